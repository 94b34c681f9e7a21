"""The kubernetes block's options on a real cluster, seen by the real `dig` in a pod.

The test edits the kubernetes block of the Corefile in ConfigMap
kube-system/coredns as a user does (`kubectl replace`), waits until both
coredns pods serve the change (the reload takes at most about 2 s), and holds
the answers of kubeadm's block (`pods insecure`, `ttl 30`) against `pods
verified`, `ttl 7`, `ignore empty_service` and a reverse zone given as a
CIDR; then `fallthrough`, which hands the names the plugin has nothing for
to `forward` (a test upstream in pod tmp's network namespace). Every query
crosses the kube-dns DNAT.
"""
import re
import subprocess

import pytest

from agent.controllers.bootstrap import COREFILE
from tests.integration.cluster import ThrowawayCluster
from tests.integration.dnsupstream import PORT, upstream
from tests.integration.manifests import coredns_corefile, documents, service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOMAIN = "cluster.local"
FAKE_IP = "10.244.250.250"             # in the pod CIDR, no pod has it
EMPTY = documents(service("empty", selector={"app": "nothing"}, ports=[{"port": 80, "targetPort": 80}]))
KUBEADM_BLOCK = f"""    kubernetes {DOMAIN} in-addr.arpa ip6.arpa {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
"""
EDITED_BLOCK = f"""    kubernetes {DOMAIN} 10.96.0.0/16 {{
       pods verified
       ignore empty_service
       ttl 7
    }}
"""


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


def corefile(c) -> str:
    return c.get("configmap", "coredns", "-n", "kube-system")["data"]["Corefile"]


def dig_each_pod(c, name: str) -> list[str]:
    """dig's output for `name` asked of every coredns pod directly (each must serve the edit)."""
    pods = c.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
    ips = [p["status"]["podIP"] for p in pods
           if not p["metadata"].get("deletionTimestamp") and p["status"].get("podIP")]
    return [subprocess.run(["ip", "netns", "exec", c.pod_netns("tmp"), "dig", "+tries=1", "+time=1",
                            f"@{ip}", name], capture_output=True, text=True, timeout=10).stdout for ip in ips]


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

    # kubectl edit's effect: the kubernetes block of the running Corefile, and nothing else, changed
    text = corefile(c)
    assert KUBEADM_BLOCK in text, text
    c.kubectl("replace", "-f", "-", input=coredns_corefile(text.replace(KUBEADM_BLOCK, EDITED_BLOCK)))
    assert EDITED_BLOCK in corefile(c)
    c.wait(lambda: [status(o) for o in dig_each_pod(c, fake)] == ["NXDOMAIN"] * 2, 20,
           "pods verified on both coredns pods")
    steadily(c, lambda: status(dig(c, fake)) == "NXDOMAIN", "pods verified through kube-dns")

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

    # a value out of CoreDNS's range is refused with its words; the edited block keeps serving
    c.kubectl("replace", "-f", "-", input=coredns_corefile(corefile(c).replace("ttl 7", "ttl 5000")))
    c.wait(lambda: "ttl must be in range [0, 3600]: 5000" in logs(c), 20, "the reload error in kubectl logs")
    assert answer(dig(c, own)) == [(f"{own}.", "7", "A", ip)]


def test_fallthrough_hands_names_to_forward(c):
    """`fallthrough cluster.local`: a cluster name the plugin has no records for is asked
    upstream (CoreDNS's next plugin, forward) instead of being its NXDOMAIN."""
    with upstream(c, "tmp", "", "192.0.2.9") as (ip, seen):
        base = COREFILE.format(domain=DOMAIN, upstream=f"{ip}:{PORT}")
        c.kubectl("replace", "-f", "-", input=coredns_corefile(base.replace(KUBEADM_BLOCK, EDITED_BLOCK)))
        c.wait(lambda: all(answer(o) for o in dig_each_pod(c, "probe.example.test")), 20,
               "forward to the test upstream on both coredns pods")
        out = dig(c, f"legacy.{DOMAIN}")                  # no svc/pod label: no such name for the plugin
        assert status(out) == "NXDOMAIN" and f"ns.dns.{DOMAIN}." in out, out
        with open(seen) as f:
            assert f"legacy.{DOMAIN}." not in f.read().split()

        fall = EDITED_BLOCK.replace("       ttl 7\n", f"       fallthrough {DOMAIN}\n       ttl 7\n")
        c.kubectl("replace", "-f", "-", input=coredns_corefile(base.replace(KUBEADM_BLOCK, fall)))
        c.wait(lambda: all(answer(o) for o in dig_each_pod(c, f"legacy.{DOMAIN}")), 20,
               "fallthrough on both coredns pods")
        assert answer(dig(c, f"legacy.{DOMAIN}")) == [(f"legacy.{DOMAIN}.", "60", "A", "192.0.2.9")]
        with open(seen) as f:
            assert f"legacy.{DOMAIN}." in f.read().split()
        # what the plugin does have is still its own answer
        assert answer(dig(c, f"kubernetes.default.svc.{DOMAIN}"))[0][1:] == ("7", "A", "10.96.0.1")


def logs(c) -> str:
    pods = c.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
    return "".join(c.kubectl("logs", "-n", "kube-system", p["metadata"]["name"], check=False).stdout for p in pods)
