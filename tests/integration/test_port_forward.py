"""`kubectl port-forward` through the API server to a pod, with real kubectl:
svc/, deploy/ and pod/ targets, several ports at once, many connections
(sequential and concurrent) from the machine, pods on either of two
nodes, and a port nothing listens on. kubectl 1.32 tunnels SPDY in a WebSocket; with
KUBECTL_PORT_FORWARD_WEBSOCKETS=false it speaks SPDY/3.1 directly, as
older kubectl does (and the old kubectl of test_kubectl_spdy.py, when
present, is run too).

kubectl runs in the cluster's host namespace (where the API listens on
127.0.0.1); the requests go to its local port from that namespace."""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from dataplane import netns
from tests.integration.cluster import REPO, ThrowawayCluster
from tests.integration.manifests import AGNHOST, deployment, documents, netexec, service

OLD_KUBECTL = os.environ.get("NSPLANE_OLD_KUBECTL", "/tmp/nsr/k120/usr/bin/kubectl")
pytestmark = [pytest.mark.integration, pytest.mark.slow]

TWO_PORTS = """\
apiVersion: v1
kind: Pod
metadata:
  name: two
  labels: {app: two}
spec:
  containers:
  - name: web
    image: nginx
    ports: [{containerPort: 80}]
  - name: echo
    image: %s
    args: [netexec, --http-port=8080]
    ports: [{containerPort: 8080}]
""" % AGNHOST

WORKLOADS = documents(
    deployment("web", replicas=2, ports=[80], readiness=("/", 80)),
    service("web", selector={"app": "web"}, ports=[{"port": 80, "targetPort": 80}]),
    deployment("echo", image=AGNHOST, args=netexec(), ports=[("http", 8080)], readiness=("/healthz", "http")),
    service("echo", selector={"app": "echo"}, ports=[{"name": "http", "port": 80, "targetPort": "http"}]),
)


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("pf")), nodes=2, dns=False) as tc:
        tc.apply(WORKLOADS)
        tc.apply(TWO_PORTS)
        tc.wait_ready("app=web", 2, timeout=90)
        tc.wait_ready("app=echo", 1, timeout=90)
        tc.wait_ready("app=two", 1, timeout=90)
        yield tc


@contextmanager
def port_forward(c, *args, kubectl="kubectl", env=None, expect_ports=1):
    """Run `kubectl port-forward ARGS` until the block ends; yields the
    process (its stdout lines so far in .lines)."""
    argv = ["nsenter", f"--net={netns.path(c.cfg.host_netns)}", "--", kubectl, "port-forward", *args]
    e = dict(os.environ, KUBECONFIG=c.kubeconfig(), **(env or {}))
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, cwd=REPO, text=True)
    p.lines = []
    threading.Thread(target=lambda: [p.lines.append(x) for x in p.stdout], daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while sum("Forwarding from 127.0.0.1" in x for x in p.lines) < expect_ports:
            if time.monotonic() > deadline or p.poll() is not None:
                raise AssertionError(f"kubectl port-forward {' '.join(args)} did not start: {p.lines} "
                                     f"{p.stderr.read() if p.poll() is not None else ''}")
            time.sleep(0.05)
        yield p
    finally:
        if p.poll() is None:
            p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def get(c, port: int, path: str = "/") -> tuple[int, bytes]:
    """One HTTP GET to 127.0.0.1:port in the cluster's host namespace."""
    with netns.entered(c.cfg.host_netns):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.connect()                   # the socket is made here, inside the namespace
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def established_to_localhost(c, pod: str, port: int) -> list[str]:
    """Established TCP connections to 127.0.0.1:port inside the pod (`ss` in its namespace)."""
    out = subprocess.run(netns.exec_argv(c.pod_netns(pod), ["ss", "-Htn", "state", "established"]),
                         capture_output=True, text=True, timeout=10, check=True).stdout
    return [x for x in out.splitlines() if f"127.0.0.1:{port} " in x]


def many(c, port: int, n: int, workers: int = 1, path: str = "/") -> list[str]:
    """n GETs, `workers` at a time; the failures (empty when all answered 200)."""
    def one(_):
        try:
            status, body = get(c, port, path)
            return "" if status == 200 and body else f"HTTP {status}"
        except (OSError, http.client.HTTPException) as e:
            return repr(e)
    with ThreadPoolExecutor(workers) as pool:
        return [x for x in pool.map(one, range(n)) if x]


def test_service_200_requests_over_websocket(c):
    pods = [x["metadata"]["name"] for x in c.ready_pods("app=web")]
    with port_forward(c, "svc/web", "18080:80", "-v=4") as p:
        assert many(c, 18080, 200) == []
        assert many(c, 18080, 100, workers=8) == []
        status, body = get(c, 18080)
        assert status == 200 and b"Welcome to nginx!" in body
        assert p.poll() is None, "kubectl port-forward ended"
        with netns.entered(c.cfg.host_netns):
            held = socket.create_connection(("127.0.0.1", 18080), timeout=10)
        held.sendall(b"GET / HTTP/1.1\r\nHost: web\r\n")          # unfinished: the pod keeps it open
        c.wait(lambda: any(established_to_localhost(c, x, 80) for x in pods), timeout=20,
               what="the forwarded connection inside the pod")
    held.close()
    assert "Forwarding from 127.0.0.1:18080 -> 80\n" in p.lines
    assert any(x.startswith("Handling connection for 18080") for x in p.lines)
    # clean close: no connection the kubelet opened stays behind in the pods
    for name in pods:
        c.wait(lambda: not established_to_localhost(c, name, 80), timeout=20, what=f"{name}'s connections to close")
    err = p.stderr.read()
    assert "tunneling_dialer" in err and "negotiated protocol: portforward.k8s.io" in err, err[-2000:]


def test_service_target_port_by_name_and_deployment(c):
    """svc/echo's port 80 is targetPort `http` (8080 in the pod): kubectl
    resolves it; deploy/echo picks one of its pods."""
    with port_forward(c, "svc/echo", "18081:80") as p:
        status, body = get(c, 18081, "/hostname")
        assert status == 200 and body.decode().startswith("echo-")
    assert "Forwarding from 127.0.0.1:18081 -> 8080\n" in p.lines
    with port_forward(c, "deploy/echo", "18082:8080"):
        assert many(c, 18082, 20, path="/hostname") == []


def test_several_ports_of_one_pod(c):
    with port_forward(c, "pod/two", "18083:80", "18084:8080", expect_ports=2):
        status, body = get(c, 18083)
        assert status == 200 and b"Welcome to nginx!" in body
        status, body = get(c, 18084, "/hostname")
        assert (status, body) == (200, b"two")
        assert many(c, 18083, 20, workers=4) == [] and many(c, 18084, 20, workers=4, path="/hostname") == []


def test_pods_on_every_node(c):
    """Each pod's own node's kubelet does the forwarding."""
    pods = {x["metadata"]["name"]: x["spec"]["nodeName"] for x in c.ready_pods("app=web")}
    assert sorted(pods.values()) == ["node-1", "node-2"], pods
    for i, name in enumerate(sorted(pods)):
        with port_forward(c, f"pod/{name}", f"{18090 + i}:80"):
            assert many(c, 18090 + i, 20, workers=4) == []


def test_spdy_when_websockets_are_off(c):
    """KUBECTL_PORT_FORWARD_WEBSOCKETS=false: the SPDY/3.1 upgrade (POST)
    that kubectl also falls back to."""
    with port_forward(c, "svc/web", "18085:80", "-v=6", env={"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}) as p:
        assert many(c, 18085, 200) == []
        assert many(c, 18085, 50, workers=8) == []
    upgrades = [x for x in p.stderr.read().splitlines() if "/portforward " in x]
    assert len(upgrades) == 1 and " POST https://" in upgrades[0] and "101 Switching Protocols" in upgrades[0], upgrades


@pytest.mark.skipif(not os.access(OLD_KUBECTL, os.X_OK), reason=f"no old (SPDY-only) kubectl at {OLD_KUBECTL}")
def test_old_spdy_only_kubectl(c):
    with port_forward(c, "svc/web", "18086:80", kubectl=OLD_KUBECTL):
        assert many(c, 18086, 100) == []


@pytest.mark.parametrize("ws", [True, False], ids=["websocket", "spdy"])
def test_nothing_listening_on_the_port(c, ws):
    """kubectl prints the kubelet's error and ends, as on a real cluster."""
    env = {} if ws else {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
    with port_forward(c, "pod/two", "18087:9999", env=env) as p:
        with pytest.raises((OSError, http.client.HTTPException)):
            get(c, 18087)
        p.wait(20)
        err = p.stderr.read()
    assert p.returncode != 0
    assert "an error occurred forwarding 18087 -> 9999: error forwarding port 9999 to pod" in err, err
    assert "dial tcp4 127.0.0.1:9999: connect: connection refused" in err, err
    assert "lost connection to pod" in err, err


def test_pod_not_found(c):
    r = c.kubectl("port-forward", "pod/nope", "18088:80", check=False)
    assert r.returncode != 0 and 'pods "nope" not found' in r.stderr
