"""The real kubectl changing a real cluster: HTTPS + token from a
kubeconfig, apply created/unchanged/configured, patch (strategic, JSON,
merge), scale + rollout status, set image, rollout restart, expose, edit,
server-side dry run, exec (WebSocket) through the Service, logs, run --rm -i,
describe's events, delete -f --wait. kubectl runs in the cluster's host
namespace with KUBECONFIG set to a file in the state dir."""
import json
import os
import shutil
import stat
import subprocess

import pytest

from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import deployment, documents, service

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")]

WEB = deployment("web", replicas=2, ports=[80])


def web_service(name: str = "web", port: int = 80) -> str:
    return service(name, selector={"app": "web"}, ports=[{"port": port, "targetPort": 80}])


SVC = web_service()


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("kubectl"))) as tc:
        yield tc


@pytest.fixture(scope="module")
def validate(c):
    """kubectl validates against /openapi/v2 by default; should the API not
    serve it, these tests turn validation off (test_kubectl_read covers it)."""
    r = c.kubectl("get", "--raw", "/openapi/v2", check=False)
    return [] if r.returncode == 0 else ["--validate=false"]


def apply(c, validate, text, *extra):
    return c.kubectl("apply", *validate, "-f", "-", *extra, input=text).stdout


def jget(c, *args):
    return json.loads(c.kubectl("get", *args, "-o", "json").stdout)


def test_anonymous_and_wrong_token_get_401(c):
    argv = ["nsenter", f"--net=/run/netns/{c.cfg.host_netns}", "curl", "-s", "--cacert", c.cfg.ca_file,
            f"https://127.0.0.1:{c.cfg.api_port}/api/v1/pods"]
    anon = json.loads(subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout)
    wrong = json.loads(subprocess.run(argv + ["-H", "Authorization: Bearer nope"], capture_output=True,
                                      text=True, timeout=10).stdout)
    assert anon["code"] == wrong["code"] == 401 and anon["reason"] == "Unauthorized"


def test_apply_created_unchanged_configured(c, validate):
    assert apply(c, validate, documents(WEB, SVC)).split("\n")[:2] == ["deployment.apps/web created",
                                                                    "service/web created"]
    assert apply(c, validate, SVC).strip() == "service/web unchanged"
    assert apply(c, validate, web_service(port=8080)).strip() == "service/web configured"
    svc = jget(c, "svc", "web")
    assert [p["port"] for p in svc["spec"]["ports"]] == [8080]
    assert "kubectl.kubernetes.io/last-applied-configuration" in svc["metadata"]["annotations"]
    assert apply(c, validate, SVC).strip() == "service/web configured"
    assert apply(c, validate, SVC).strip() == "service/web unchanged"


def test_server_side_dry_run_stores_nothing(c, validate):
    out = apply(c, validate, web_service("dry"), "--dry-run=server")
    assert out.strip() == "service/dry created (server dry run)"
    assert c.kubectl("get", "svc", "dry", check=False).returncode != 0


def test_patch_strategic_json_and_merge(c):
    assert c.kubectl("patch", "svc", "web", "-p", '{"spec":{"selector":{"app":"webb"}}}').stdout.strip() == \
        "service/web patched"
    assert jget(c, "svc", "web")["spec"]["selector"] == {"app": "webb"}
    c.kubectl("patch", "svc", "web", "--type=json", "-p",
              '[{"op":"replace","path":"/spec/selector/app","value":"web"}]')
    c.kubectl("patch", "svc", "web", "--type=merge", "-p", '{"metadata":{"labels":{"tier":"front"}}}')
    svc = jget(c, "svc", "web")
    assert svc["spec"]["selector"] == {"app": "web"} and svc["metadata"]["labels"] == {"tier": "front"}
    bad = c.kubectl("patch", "svc", "web", "--type=json", "-p",
                    '[{"op":"test","path":"/spec/selector/app","value":"nope"}]', check=False)
    assert bad.returncode != 0 and "test failed" in bad.stderr


def test_scale_and_rollout_status(c):
    assert c.kubectl("scale", "deploy", "web", "--replicas=3").stdout.strip() == "deployment.apps/web scaled"
    out = c.kubectl("rollout", "status", "deploy/web", "--timeout=60s", timeout=90).stdout
    assert 'deployment "web" successfully rolled out' in out
    assert jget(c, "deploy", "web")["status"]["readyReplicas"] == 3


def test_set_image_and_rollout_restart(c):
    c.kubectl("set", "image", "deploy/web", "web=nginx:1.27")
    c.kubectl("rollout", "status", "deploy/web", "--timeout=60s", timeout=90)
    d = jget(c, "deploy", "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert d["spec"]["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert c.kubectl("rollout", "restart", "deploy/web").stdout.strip() == "deployment.apps/web restarted"
    c.kubectl("rollout", "status", "deploy/web", "--timeout=60s", timeout=90)
    d = jget(c, "deploy", "web")
    assert "kubectl.kubernetes.io/restartedAt" in d["spec"]["template"]["metadata"]["annotations"]


def test_expose_nodeport(c):
    out = c.kubectl("expose", "deployment", "web", "--port=80", "--target-port=80", "--type=NodePort",
                    "--name=web2").stdout
    assert out.strip() == "service/web2 exposed"
    svc = jget(c, "svc", "web2")
    assert svc["spec"]["type"] == "NodePort" and 30000 <= svc["spec"]["ports"][0]["nodePort"] <= 32767
    assert svc["spec"]["selector"] == {"app": "web"}


def test_edit_with_editor_script(c, tmp_path):
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/type: ClusterIP/type: NodePort/' \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    out = c.kubectl("edit", "svc", "web", env={"EDITOR": str(editor)}).stdout
    assert out.strip() == "service/web edited"
    svc = jget(c, "svc", "web")
    assert svc["spec"]["type"] == "NodePort" and svc["spec"]["ports"][0]["nodePort"]


def web_pod(c):
    c.wait_ready("app=web", 3, timeout=60)
    return jget(c, "pods", "-l", "app=web")["items"][0]["metadata"]["name"]


def test_exec_curl_through_the_service(c):
    pod = web_pod(c)
    r = c.kubectl("exec", pod, "--", "curl", "-s", "http://web:8080", timeout=30, check=False)
    if r.returncode != 0:      # the Service's port was set back to 80 by the apply test's last step
        r = c.kubectl("exec", pod, "--", "curl", "-s", "http://web", timeout=30)
    assert "Welcome to nginx!" in r.stdout
    r = c.kubectl("exec", pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (r.returncode, r.stdout) == (3, "out\n") and "err" in r.stderr
    assert c.kubectl("exec", "-i", pod, "--", "cat", input="through stdin\n").stdout == "through stdin\n"


def test_logs(c):
    pod = web_pod(c)
    assert "start worker process" in c.kubectl("logs", pod).stdout
    assert len(c.kubectl("logs", pod, "--tail=1").stdout.splitlines()) == 1


def test_run_rm_i_with_piped_stdin(c):
    r = c.kubectl("run", "tmp", "--rm", "-i", "--image=curlimages/curl", "--restart=Never", "--", "sh",
                  input="echo hi-from-$(hostname)\ncurl -s http://web.default.svc.cluster.local:8080 "
                        "|| curl -s http://web\n", timeout=90)
    assert "hi-from-tmp" in r.stdout and "Welcome to nginx!" in r.stdout
    assert 'pod "tmp" deleted' in r.stdout
    assert c.kubectl("get", "pod", "tmp", check=False).returncode != 0


def test_describe_pod_shows_kubelet_and_scheduler_events(c):
    pod = web_pod(c)
    out = c.kubectl("describe", "pod", pod).stdout
    for reason in ("Scheduled", "Pulled", "Created", "Started"):
        assert reason in out, out
    evs = jget(c, "events", "--field-selector", f"involvedObject.name={pod}")["items"]
    assert {"Scheduled", "Started"} <= {e["reason"] for e in evs}


def test_delete_f_and_delete_wait(c):
    out = c.kubectl("delete", "-f", "-", input=SVC, timeout=60).stdout
    assert out.strip() == 'service "web" deleted'
    c.kubectl("delete", "svc", "web2", "--wait", timeout=60)
    out = c.kubectl("delete", "deploy", "web", "--cascade=foreground", timeout=90).stdout
    assert out.strip() == 'deployment.apps "web" deleted'
    assert jget(c, "rs")["items"] == []
    assert c.kubectl("get", "deploy", "web", check=False).returncode != 0


def test_nsplane_kubeconfig_prints_a_working_config(c, tmp_path):
    text = c.nsplane("kubeconfig").stdout
    path = tmp_path / "cfg"
    path.write_text(text)
    argv = ["nsenter", f"--net=/run/netns/{c.cfg.host_netns}", "kubectl", "get", "ns", "-o", "name"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, KUBECONFIG=str(path)))
    assert "namespace/kube-system" in r.stdout.split()
