"""The e2e images' stand-ins behind Services, on a real single-node cluster,
as Kubernetes' Service and proxy e2e tests use them: a Deployment of
`/agnhost serve-hostname` behind a ClusterIP Service (StartServeHostnameService:
every pod's name comes back through the Service), the test jig's
`serve-hostname --http=false --tcp --udp` behind one TCP and one UDP port,
and `agnhost porter` serving SERVE_PORT_* and SERVE_TLS_PORT_* values on
three Service ports. Every request is made from inside a pod running the
agnhost image's default command (pause). One cluster serves the module."""

import pytest
import yaml

from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import deployment, documents, pod, service

pytestmark = pytest.mark.integration

IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def patched(manifest: str, **container) -> str:
    """A Deployment from manifests.deployment() with fields its helper does not
    take (command, env) set on its container."""
    obj = yaml.safe_load(manifest)
    obj["spec"]["template"]["spec"]["containers"][0].update(container)
    return yaml.safe_dump(obj, sort_keys=False)


HOSTNAMES = documents(
    patched(deployment("hostnames", image=IMAGE, replicas=3, ports=[9376], readiness=("/", 9376)),
            command=["/agnhost", "serve-hostname"]),
    service("hostnames", selector={"app": "hostnames"}, ports=[{"port": 80, "targetPort": 9376}]))

TCPUDP = documents(
    patched(deployment("tcpudp", image=IMAGE, replicas=2),
            command=["/agnhost", "serve-hostname", "--http=false", "--tcp", "--udp"]),
    service("tcpudp", selector={"app": "tcpudp"},
            ports=[{"name": "tcp", "port": 80, "targetPort": 9376},
                   {"name": "udp", "port": 80, "targetPort": 9376, "protocol": "UDP"}]))

PORTER = documents(
    patched(deployment("porter", image=IMAGE, args=["porter"], readiness=("/", 80)),
            env=[{"name": "SERVE_PORT_80", "value": "foo"}, {"name": "SERVE_PORT_1080", "value": "bar"},
                 {"name": "SERVE_TLS_PORT_443", "value": "tls baz"}]),
    service("porter", selector={"app": "porter"},
            ports=[{"name": "http", "port": 80, "targetPort": 80}, {"name": "alt", "port": 81, "targetPort": 1080},
                   {"name": "tls", "port": 443, "targetPort": 443}]))

CLIENT = pod("client", image=IMAGE)


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster")), dns=False) as tc:
        tc.apply(documents(HOSTNAMES, TCPUDP, PORTER, CLIENT))
        tc.wait_ready("app=hostnames", 3, timeout=60)
        tc.wait_ready("app=porter", 1, timeout=60)
        tc.wait(lambda: len([p for p in tc.get("pods", "-l", "app=tcpudp")["items"]
                             if p["status"].get("podIP")]) == 2, 60, "2 tcpudp pods with IPs")
        tc.wait(lambda: tc.get("pod", "client")["status"].get("phase") == "Running", 60, "client running")
        yield tc


def cluster_ip(c, name: str) -> str:
    return c.get("svc", name)["spec"]["clusterIP"]


def names(c, selector: str) -> set[str]:
    return {p["metadata"]["name"] for p in c.get("pods", "-l", selector)["items"]}


def in_client(c, script: str) -> str:
    r = c.exec("client", "sh", "-c", script, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_client_runs_the_images_default_command(c):
    assert c.nsplane("logs", "client").stdout == "Paused\n"


def test_serve_hostname_service_answers_with_every_pod_name(c):
    ip = cluster_ip(c, "hostnames")
    expected = names(c, "app=hostnames")

    def seen():
        out = in_client(c, f"for i in $(seq 1 40); do curl -s --max-time 2 http://{ip}:80/; echo; done")
        return {line.strip() for line in out.splitlines() if line.strip()} >= expected
    c.wait(seen, 60, "all three hostnames through the Service")


def test_tcp_and_udp_hostnames_through_one_service_port(c):
    ip = cluster_ip(c, "tcpudp")
    expected = names(c, "app=tcpudp")
    # no readiness probe: a pod has its IP a moment before its server listens
    tcp = c.wait(lambda: in_client(c, f"echo hostName | nc -w 2 {ip} 80").strip(), 30,
                 "a TCP answer through the Service")
    assert tcp in expected
    udp = c.wait(lambda: in_client(c, f"echo hostName | nc -u -W 1 -w 2 {ip} 80").strip(), 30,
                 "a UDP answer through the Service")
    assert udp in expected


def test_porter_serves_each_port_its_value(c):
    ip = cluster_ip(c, "porter")
    assert in_client(c, f"curl -s --max-time 3 http://{ip}:80/anything") == "foo"
    assert in_client(c, f"curl -s --max-time 3 http://{ip}:81/") == "bar"
    assert in_client(c, f"curl -sk --max-time 5 https://{ip}:443/") == "tls baz"
