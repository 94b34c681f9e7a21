"""kubectl's imperative verbs against a real cluster, and the API server's
answers they rely on: `kubectl create <kind>` sends protobuf (every
subcommand for the kinds we serve succeeds; a kind we do not serve is
kube-apiserver's 404, never a 5xx), `create --raw` (a chunked JSON body),
DeleteCollection with a label selector, unknown subresources and resources
are 404 (not the parent object), a body that is neither JSON, YAML nor
protobuf is 415, a broken protobuf body is 400 and the connection still
answers the next request; `default/kubernetes` deleted by `delete svc --all`
is back within 10 s, and the system namespaces cannot be deleted."""
import json
import shutil
import subprocess
import time

import pytest

from tests.integration.cluster import ThrowawayCluster

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")]


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("create")), dns=False) as tc:
        yield tc


def jget(c, *args):
    return json.loads(c.kubectl("get", *args, "-o", "json").stdout)


def curl(c, method: str, path: str, *extra: str) -> subprocess.CompletedProcess:
    """curl as the admin, from the cluster's host namespace; prints the body
    then the HTTP code and content type on a last line."""
    with open(c.cfg.token_file("admin")) as f:
        token = f.read().strip()
    argv = ["nsenter", f"--net=/run/netns/{c.cfg.host_netns}", "curl", "-s", "--cacert", c.cfg.ca_file,
            "-H", f"Authorization: Bearer {token}", "-X", method, *extra,
            "-w", "\n%{http_code} %{content_type}", f"https://127.0.0.1:{c.cfg.api_port}{path}"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


def body_and_code(r: subprocess.CompletedProcess) -> tuple[dict, int, str]:
    body, _, last = r.stdout.rpartition("\n")
    code, _, ctype = last.partition(" ")
    return json.loads(body), int(code), ctype


def test_create_namespace_deployment_and_every_service_type(c):
    assert c.kubectl("create", "namespace", "tutorial").stdout.strip() == "namespace/tutorial created"
    ns = jget(c, "namespace", "tutorial")
    assert ns["status"]["phase"] == "Active" and ns["spec"]["finalizers"] == ["kubernetes"]
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "tutorial"}

    out = c.kubectl("-n", "tutorial", "create", "deployment", "web", "--image=nginx", "--replicas=2",
                    "--port=80").stdout
    assert out.strip() == "deployment.apps/web created"
    d = jget(c, "-n", "tutorial", "deployment", "web")
    assert d["spec"]["replicas"] == 2 and d["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert d["spec"]["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]

    for args, name in ((["clusterip", "web", "--tcp=80:80"], "web"),
                       (["nodeport", "np", "--tcp=80:8080", "--node-port=30123"], "np"),
                       (["loadbalancer", "lb", "--tcp=443:8443"], "lb"),
                       (["externalname", "ext", "--external-name=example.com"], "ext"),
                       (["clusterip", "headless", "--clusterip=None"], "headless")):
        assert c.kubectl("-n", "tutorial", "create", "service", *args).stdout.strip() == f"service/{name} created"
    svcs = {s["metadata"]["name"]: s for s in jget(c, "-n", "tutorial", "services")["items"]}
    assert svcs["np"]["spec"]["ports"][0]["nodePort"] == 30123 and svcs["np"]["spec"]["type"] == "NodePort"
    assert svcs["lb"]["spec"]["type"] == "LoadBalancer"
    assert svcs["ext"]["spec"] == {**svcs["ext"]["spec"], "type": "ExternalName", "externalName": "example.com"}
    assert svcs["headless"]["spec"]["clusterIP"] == "None"
    assert svcs["web"]["spec"]["selector"] == {"app": "web"}

    # kubectl's answer is decoded from our protobuf: an error comes back as a Status it can read.
    again = c.kubectl("create", "namespace", "tutorial", check=False)
    assert again.returncode == 1
    assert again.stderr.strip() == 'Error from server (AlreadyExists): namespaces "tutorial" already exists'


@pytest.mark.parametrize("args", [
    ["quota", "q", "--hard=pods=3"],
    ["priorityclass", "p", "--value=5"],
    ["poddisruptionbudget", "pdb", "--selector=app=web", "--min-available=1"],
], ids=lambda a: a[0])
def test_a_kind_the_server_does_not_serve_is_a_404(c, args):
    r = c.kubectl("create", *args, check=False)
    assert r.returncode == 1
    assert "the server could not find the requested resource" in r.stderr, r.stderr
    assert "Internal" not in r.stderr


def test_create_raw_sends_a_chunked_body(c, tmp_path):
    path = tmp_path / "ns.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "raw"}}))
    out = json.loads(c.kubectl("create", "--raw", "/api/v1/namespaces", "-f", str(path)).stdout)
    assert out["metadata"]["name"] == "raw" and out["status"] == {"phase": "Active"}
    c.kubectl("delete", "namespace", "raw")


def test_delete_collection_by_label(c):
    for name, tier in (("a", "x"), ("b", "x"), ("keep", "y")):
        c.kubectl("create", "service", "clusterip", name, "--tcp=80:80")
        c.kubectl("label", "service", name, f"tier={tier}")
    r = c.kubectl("delete", "--raw", "/api/v1/namespaces/default/services?labelSelector=tier%3Dx")
    gone = json.loads(r.stdout)
    assert gone["kind"] == "ServiceList" and sorted(s["metadata"]["name"] for s in gone["items"]) == ["a", "b"]
    left = {s["metadata"]["name"] for s in jget(c, "services")["items"]}
    assert "keep" in left and not {"a", "b"} & left
    c.kubectl("delete", "service", "keep")
    # namespaces have no deletecollection, as in kube
    assert c.kubectl("delete", "--raw", "/api/v1/namespaces", check=False).returncode == 1


@pytest.mark.parametrize("path", ["/api/v1/namespaces/default/foos",
                                  "/api/v1/namespaces/default/pods/nope/log/x",
                                  "/api/v1/namespaces/default/services/kubernetes/nosuchsub",
                                  "/apis/apps/v1/namespaces/default/deployments/x/log"])
def test_unknown_resources_and_subresources_are_404(c, path):
    r = c.kubectl("get", "--raw", path, check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == "Error from server (NotFound): the server could not find the requested resource"


def test_a_proxy_to_an_unknown_pod_is_its_404(c):
    r = c.kubectl("get", "--raw", "/api/v1/namespaces/default/pods/nope/proxy/x", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, 'Error from server (NotFound): pods "nope" not found')


def test_bodies_that_are_not_json_yaml_or_protobuf(c, tmp_path):
    status, code, ctype = body_and_code(curl(c, "POST", "/api/v1/namespaces", "-H", "Content-Type: text/plain",
                                            "--data", "name: x"))
    assert (code, status["reason"], ctype) == (415, "UnsupportedMediaType", "application/json")
    assert "application/vnd.kubernetes.protobuf" in status["message"]

    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"k8s\x00\x0a\x07garbage")
    status, code, _ = body_and_code(curl(c, "POST", "/api/v1/namespaces", "-H",
                                         "Content-Type: application/vnd.kubernetes.protobuf",
                                         "--data-binary", f"@{garbage}"))
    assert (code, status["kind"], status["reason"]) == (400, "Status", "BadRequest")

    yaml_ns = curl(c, "POST", "/api/v1/namespaces", "-H", "Content-Type: application/yaml",
                   "--data-binary", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: from-yaml\n")
    obj, code, _ = body_and_code(yaml_ns)
    assert code == 201 and obj["metadata"]["name"] == "from-yaml"
    c.kubectl("delete", "namespace", "from-yaml")


def test_a_refused_body_is_drained_so_the_next_request_on_the_connection_answers(c, tmp_path):
    """Two requests on one keep-alive connection: the first is refused before
    its body matters (unknown resource); the second must still be parsed as a
    request, not as the first one's leftover bytes."""
    with open(c.cfg.token_file("admin")) as f:
        token = f.read().strip()
    url = f"https://127.0.0.1:{c.cfg.api_port}"
    body = tmp_path / "body.pb"
    body.write_bytes(b"k8s\x00" + b"x" * 200)
    argv = ["nsenter", f"--net=/run/netns/{c.cfg.host_netns}", "curl", "-s", "--cacert", c.cfg.ca_file,
            "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/vnd.kubernetes.protobuf",
            "-X", "POST", "--data-binary", f"@{body}", f"{url}/api/v1/namespaces/default/foos",
            "--next", "-s", "--cacert", c.cfg.ca_file, "-H", f"Authorization: Bearer {token}", f"{url}/version"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout
    first, second = out.split("}{", 1)
    assert json.loads(first + "}")["code"] == 404
    assert json.loads("{" + second)["major"] == "1"


def test_kubernetes_service_comes_back_after_delete_all(c):
    before = jget(c, "service", "kubernetes")
    c.kubectl("delete", "svc", "--all")
    deadline = time.monotonic() + 10
    back = None
    while time.monotonic() < deadline:
        r = c.kubectl("get", "service", "kubernetes", "-o", "json", check=False)
        if r.returncode == 0:
            back = json.loads(r.stdout)
            break
        time.sleep(0.2)
    assert back is not None, "default/kubernetes did not come back within 10 s"
    assert back["spec"]["clusterIP"] == before["spec"]["clusterIP"] == "10.96.0.1"
    assert back["metadata"]["uid"] != before["metadata"]["uid"]
    slices = jget(c, "endpointslices", "-l", "kubernetes.io/service-name=kubernetes")["items"]
    assert [ep["addresses"] for s in slices for ep in s["endpoints"]] == [[c.cfg.host_ip]]


def test_system_namespaces_cannot_be_deleted_and_come_back(c):
    for ns in ("default", "kube-system", "kube-public"):
        r = c.kubectl("delete", "namespace", ns, check=False)
        assert r.stderr.strip() == \
            f'Error from server (Forbidden): namespaces "{ns}" is forbidden: this namespace may not be deleted'
    c.kubectl("delete", "namespace", "kube-node-lease")
    deadline = time.monotonic() + 10
    while c.kubectl("get", "namespace", "kube-node-lease", check=False).returncode != 0:
        assert time.monotonic() < deadline, "kube-node-lease did not come back within 10 s"
        time.sleep(0.2)


def test_a_body_over_3_mib_is_413(c, tmp_path):
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "big"},
                               "padding": "x" * (3 * 1024 * 1024)}))
    status, code, _ = body_and_code(curl(c, "POST", "/api/v1/namespaces", "-H", "Content-Type: application/json",
                                         "--data-binary", f"@{big}"))
    assert (code, status["reason"]) == (413, "RequestEntityTooLarge")
    assert status["message"] == "Request entity too large: limit is 3145728"
    assert c.kubectl("get", "namespace", "big", check=False).returncode == 1
