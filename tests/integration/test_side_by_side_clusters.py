"""Two clusters on one machine, brought up with the `nsplane` command as a
user would (`nsplane --cluster NAME up`, in the tests' namespaced mode:
--host-netns): the second picks the next free API port and underlay by
itself, each gets its own kubeconfig context, each passes the ClusterIP
check, neither sees the other's pods or Services, `nsplane clusters` lists
both, and one `down` leaves the other running and answering."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import yaml

from agent.api.config import ClusterConfig
from tests.integration.cluster import REPO, ThrowawayCluster
from tests.integration.manifests import AGNHOST, deployment, documents, netexec, pod, service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEB = documents(deployment("web", ports=[80], readiness=("/", 80)),
                service("web", selector={"app": "web"}, ports=[{"port": 80, "targetPort": 80}]),
                pod("client", command=["sleep", "3600"]))
ECHO = documents(deployment("echo", image=AGNHOST, args=netexec(), ports=[("http", 8080)],
                            readiness=("/healthz", "http")),
                 service("echo", selector={"app": "echo"}, ports=[{"port": 80, "targetPort": 8080}]),
                 pod("client", command=["sleep", "3600"]))


class CliCluster(ThrowawayCluster):
    """ThrowawayCluster's helpers around a cluster the `nsplane` command made."""

    def __init__(self, state_dir: str, name: str, kubeconfig: str):
        self.cfg = ClusterConfig(name=name, state_dir=state_dir)
        self.user_kubeconfig = kubeconfig

    def env(self):
        return dict(super().env(), KUBECONFIG=self.user_kubeconfig)

    def up(self):
        out = self.nsplane("up", "--host-netns", f"{self.cfg.name}-host", timeout=180).stdout
        self.cfg = ClusterConfig.find(self.cfg.name, self.cfg.state_dir)
        return out

    def down(self, purge: bool = True):
        args = ["down", "--purge"] if purge else ["down"]
        return self.nsplane(*args, timeout=120)


def cluster_ip_answers(c: CliCluster, svc: str, want: str, path: str = "/hostname") -> str:
    ip = c.get("svc", svc)["spec"]["clusterIP"]
    c.wait(lambda: want in c.exec("client", "curl", "-s", "-m", "3", f"http://{ip}{path}").stdout,
           timeout=60, what=f"{want} from ClusterIP {ip} of {c.cfg.name}")
    return ip


def fails_from(c: CliCluster, url: str) -> bool:
    r = c.exec("client", "curl", "-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", url)
    return r.returncode != 0


def test_two_clusters_side_by_side(tmp_path):
    tag = f"{os.getpid() % 0xffff:04x}{int(time.time() * 1000) % 0xff:02x}"
    kubeconfig = str(tmp_path / "kubeconfig")
    a = CliCluster(str(tmp_path), f"nsplane-s{tag}a", kubeconfig)
    b = CliCluster(str(tmp_path), f"nsplane-s{tag}b", kubeconfig)
    try:
        out_a, out_b = a.up(), b.up()
        assert f"cluster {a.cfg.name}: API port 6443, underlay 172.28.0.0/24, LoadBalancer range " \
               "172.28.0.200-172.28.0.250" in out_a
        assert f"cluster {b.cfg.name}: API port 6444, underlay 172.28.1.0/24, LoadBalancer range " \
               "172.28.1.200-172.28.1.250" in out_b
        contexts = {x["name"]: x["context"] for x in yaml.safe_load(open(kubeconfig))["contexts"]}
        assert {a.cfg.name, b.cfg.name} <= set(contexts)

        listing = b.nsplane("clusters").stdout.splitlines()
        assert listing[0].split() == ["NAME", "API", "NODES", "UNDERLAY", "STATE"]
        assert listing[1].split() == [a.cfg.name, "https://127.0.0.1:6443", "1", "172.28.0.0/24", "Running"]
        assert listing[2].split() == [b.cfg.name, "https://127.0.0.1:6444", "1", "172.28.1.0/24", "Running"]

        a.apply(WEB)
        b.apply(ECHO)
        a.wait_ready("app=web", 1, timeout=90)
        b.wait_ready("app=echo", 1, timeout=90)
        a.wait(lambda: a.get("pod", "client")["status"].get("phase") == "Running", 60, "client in a")
        b.wait(lambda: b.get("pod", "client")["status"].get("phase") == "Running", 60, "client in b")
        echo_pod = b.ready_pods("app=echo")[0]
        cluster_ip_answers(a, "web", "Welcome to nginx!", "/")
        ip_b = cluster_ip_answers(b, "echo", echo_pod["metadata"]["name"])

        # neither sees the other: objects, Service addresses, pods, nodes
        assert not fails_from(a, f"http://{a.get('svc', 'web')['spec']['clusterIP']}/")   # the probe itself works
        assert a.kubectl("get", "svc", "echo", check=False).returncode != 0
        assert b.kubectl("get", "deploy", "web", check=False).returncode != 0
        if ip_b != a.get("svc", "web")["spec"]["clusterIP"]:
            assert fails_from(a, f"http://{ip_b}/hostname")
        assert fails_from(a, f"http://{echo_pod['status']['podIP']}:8080/hostname")
        assert fails_from(a, f"http://{b.cfg.node_ip(1)}:10250/healthz")

        a.down(purge=False)
        listing = b.nsplane("clusters").stdout
        assert f"{a.cfg.name}   https://127.0.0.1:6443" in listing and "Stopped" in listing
        cluster_ip_answers(b, "echo", echo_pod["metadata"]["name"])   # untouched
        assert b.kubectl("get", "nodes", "-o", "name").stdout.split() == ["node/node-1"]
        assert a.leftovers() == []
    finally:
        for c in (a, b):
            try:
                c.down()
            except (AssertionError, subprocess.TimeoutExpired) as e:
                print(f"cleanup of {c.cfg.name}: {e}", file=sys.stderr)
    assert a.leftovers() == [] and b.leftovers() == []
    assert "No clusters found" in subprocess.run(
        [sys.executable, "-m", "agent.cli", "clusters"], capture_output=True, text=True, cwd=REPO,
        env=dict(os.environ, NSPLANE_STATE_DIR=str(tmp_path), PYTHONPATH=REPO)).stderr
