"""The kubernetes block's options on a real cluster, seen by the real `dig` in a pod.

Until the Corefile is read (kube-system/coredns), the coredns pods take the
block's options from NSPLANE_DNS_KUBERNETES_OPTIONS (agent/coredns/options.py,
a test/debug hook). The test changes it as a user changes a Deployment,
`kubectl set env deployment/coredns`, waits for the rollout, and holds the
answers of the default (`pods insecure`, `ttl 30`) against `pods verified`,
`ttl 7`, `ignore empty_service` and a reverse zone given as a CIDR, with
every query crossing the kube-dns DNAT.
"""
import json
import re

import pytest

from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import documents, service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOMAIN = "cluster.local"
ENV = "NSPLANE_DNS_KUBERNETES_OPTIONS"
FAKE_IP = "10.244.250.250"             # in the pod CIDR, no pod has it
EMPTY = documents(service("empty", selector={"app": "nothing"}, ports=[{"port": 80, "targetPort": 80}]))
OPTIONS = {"zones": [DOMAIN, "10.96.0.0/16"], "pods": "verified", "ttl": 7, "ignore_empty_service": True,
           "fallthrough": None}


def dig(c, *args: str) -> str:
    out = c.exec("tmp", "dig", "+tries=2", "+time=1", *args).stdout
    print(f"$ dig {' '.join(args)}  ->  {status(out)} {answer(out)}")   # the transcript, with pytest -s
    return out


def status(out: str) -> str:
    m = re.search(r"status: ([A-Z]+)", out)
    return m.group(1) if m else f"no status in {out!r}"


def answer(out: str) -> list[tuple[str, str, str, str]]:
    """(owner, ttl, type, data) per answer record of dig's output."""
    section = out.split(";; ANSWER SECTION:", 1)[1].split("\n\n", 1)[0] if ";; ANSWER SECTION:" in out else ""
    rows = [line.split(None, 4) for line in section.splitlines() if line.strip()]
    return [(r[0], r[1], r[3], r[4]) for r in rows if len(r) == 5]


def coredns_env(c) -> list[dict]:
    dep = c.get("deployment", "coredns", "-n", "kube-system")
    return dep["spec"]["template"]["spec"]["containers"][0].get("env", [])


def steadily(c, fn, what: str, times: int = 4, timeout: float = 60):
    """fn() holds `times` times in a row (each query may reach either coredns pod)."""
    def check():
        return all(fn() for _ in range(times))
    return c.wait(check, timeout, what)


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster"))) as tc:
        tc.apply(EMPTY)
        tc.nsplane("run", "tmp", "--image=curlimages/curl", "--", "sleep", "3600")
        tc.wait_ready("run=tmp", 1, timeout=40)
        tc.wait(lambda: status(dig(tc, f"kubernetes.default.svc.{DOMAIN}")) == "NOERROR", 40, "cluster DNS answering")
        yield tc


def test_pods_insecure_then_verified(c):
    ip = c.get("pod", "tmp")["status"]["podIP"]
    own = f"{ip.replace('.', '-')}.default.pod.{DOMAIN}"
    fake = f"{FAKE_IP.replace('.', '-')}.default.pod.{DOMAIN}"
    other_ns = f"{ip.replace('.', '-')}.kube-system.pod.{DOMAIN}"

    # kubeadm's defaults: pods insecure answers any IP-shaped name, ttl 30
    out = dig(c, own)
    assert answer(out) == [(f"{own}.", "30", "A", ip)], out
    assert answer(dig(c, fake)) == [(f"{fake}.", "30", "A", FAKE_IP)]
    assert answer(dig(c, other_ns)) == [(f"{other_ns}.", "30", "A", ip)]
    assert answer(dig(c, f"empty.default.svc.{DOMAIN}"))[0][2:] == ("A", c.get("svc", "empty")["spec"]["clusterIP"])

    c.kubectl("-n", "kube-system", "set", "env", "deployment/coredns", f"{ENV}={json.dumps(OPTIONS)}")
    assert {"name": ENV, "value": json.dumps(OPTIONS)} in coredns_env(c)
    c.kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=90s", timeout=100)
    steadily(c, lambda: status(dig(c, fake)) == "NXDOMAIN", "pods verified on every coredns pod")

    # pods verified: only the IP of a pod that exists, in its own namespace
    out = dig(c, own)
    assert answer(out) == [(f"{own}.", "7", "A", ip)], out
    out = dig(c, fake)
    assert status(out) == "NXDOMAIN" and re.search(rf"^{DOMAIN}\.\s+7\s+IN\s+SOA\s+ns\.dns\.{DOMAIN}\.", out, re.M), out
    assert status(dig(c, other_ns)) == "NXDOMAIN"
    # ignore empty_service: a Service without ready endpoints does not exist
    assert status(dig(c, f"empty.default.svc.{DOMAIN}")) == "NXDOMAIN"
    # 10.96.0.0/16 is a reverse zone of the block: the kube-dns ClusterIP has its PTR
    out = dig(c, "-x", "10.96.0.10")
    assert answer(out) == [("10.0.96.10.in-addr.arpa.", "7", "PTR", f"kube-dns.kube-system.svc.{DOMAIN}.")], out
    # and a name of 10.96.0.0/16 that nothing has is NXDOMAIN with that zone's SOA (no fallthrough)
    out = dig(c, "-x", "10.96.255.254")
    assert status(out) == "NXDOMAIN" and "96.10.in-addr.arpa." in out, out
