"""The kube-system/coredns Corefile on a real cluster: kubeadm's text at `up`,
then a user's edits served by the coredns pods within seconds — a stub domain
forwarded to a test upstream (a dnslib server we run in pod tmp's network
namespace), `hosts` entries, `rewrite name`, `autopath @kubernetes` (one query
where the search path would take four), and a typo that leaves DNS answering
with the error in `kubectl logs`. Queries are the real dig inside pod tmp."""
import os
import subprocess
import tempfile
import time

import pytest

from agent.controllers.bootstrap import COREFILE
from tests.integration.cluster import ThrowawayCluster
from tests.integration.dnsupstream import PORT, upstream
from tests.integration.manifests import coredns_corefile, deployment, documents, service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEB = documents(
    deployment("web", replicas=1, ports=[80], readiness=("/", 80)),
    service("web", type="ClusterIP", selector={"app": "web"}, ports=[{"port": 80, "targetPort": 80}]))

CUSTOM = """.:53 {{
    errors
    log . {{
       class all
    }}
    health {{
       lameduck 5s
    }}
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
       pods verified
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    autopath @kubernetes
    hosts {{
       {hosts_ip} db.legacy.internal
       fallthrough
    }}
    rewrite name exact alias.default.svc.cluster.local web.default.svc.cluster.local answer auto
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
}}
example.test:53 {{
    errors
    forward . {upstream}:{port}
}}
"""


def kget(c, *args: str) -> dict:
    import json
    return json.loads(c.kubectl("get", *args, "-o", "json").stdout)


def dns_pods(c) -> list[dict]:
    pods = c.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and p["status"].get("podIP")]


def dig_each(c, *args: str) -> list[list[str]]:
    """The same question asked of every coredns pod directly (each must serve the change), by the
    real dig in pod tmp's network namespace (ip netns exec: no exec round trip, so the reload
    timing is not dominated by `nsplane exec`)."""
    ips = c.dns_ips if getattr(c, "dns_ips", None) else [p["status"]["podIP"] for p in dns_pods(c)]
    return [subprocess.run(["ip", "netns", "exec", c.pod_netns("tmp"), "dig", "+short", "+tries=1", "+time=1",
                            f"@{ip}", *args], capture_output=True, text=True, timeout=10).stdout.split()
            for ip in ips]


def logs(c) -> str:
    return "".join(c.kubectl("logs", "-n", "kube-system", p["metadata"]["name"], check=False).stdout
                   for p in dns_pods(c))


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster"))) as tc:
        tc.apply(WEB)
        tc.nsplane("run", "tmp", "--image=curlimages/curl", "--", "sleep", "3600")
        tc.wait_ready("run=tmp", 1, timeout=30)
        tc.wait_ready("app=web", 1, timeout=30)
        tc.wait(lambda: len(dns_pods(tc)) == 2, 40, "2 coredns pods")
        with upstream(tc, "tmp", "example.test.", "192.0.2.7") as (tc.upstream_ip, tc.upstream_seen):
            yield tc


def apply_and_time(c, corefile: str, ready) -> float:
    c.dns_ips = [p["status"]["podIP"] for p in dns_pods(c)]
    started = time.monotonic()
    c.kubectl("apply", "-f", "-", input=coredns_corefile(corefile))
    c.wait(ready, 20, "the new Corefile serving on every coredns pod")
    took = time.monotonic() - started
    c.dns_ips = None
    return took


def test_up_writes_kubeadms_corefile_and_mounts_it(c):
    cm = kget(c, "configmap", "-n", "kube-system", "coredns")
    assert cm["data"]["Corefile"] == COREFILE.format(domain="cluster.local", upstream="/etc/resolv.conf")
    assert "forward . /etc/resolv.conf {" in cm["data"]["Corefile"]
    spec = kget(c, "deployment", "-n", "kube-system", "coredns")["spec"]["template"]["spec"]
    assert spec["containers"][0]["args"] == ["-conf", "/etc/coredns/Corefile"]
    assert spec["containers"][0]["volumeMounts"][0]["mountPath"] == "/etc/coredns"
    assert spec["volumes"][0]["configMap"]["name"] == "coredns"
    assert "plugin/reload: Running configuration SHA512" in logs(c)


def test_custom_corefile_stub_domain_hosts_rewrite_autopath_then_typo(c):
    web_ip = c.get("svc", "web")["spec"]["clusterIP"]
    custom = CUSTOM.format(hosts_ip="10.1.2.3", upstream=c.upstream_ip, port=PORT)
    took = apply_and_time(c, custom, lambda: all(a == ["10.1.2.3"] for a in dig_each(c, "db.legacy.internal")))
    print(f"\nCorefile change serving on both coredns pods {took:.2f} s after kubectl apply")

    # stub domain: answered by the example.test block's forward, seen by our upstream
    assert c.exec("tmp", "dig", "+short", "+tries=2", "+time=2", "foo.example.test").stdout.split() == ["192.0.2.7"]
    with open(c.upstream_seen) as f:
        assert "foo.example.test." in f.read().split()
    # rewrite name ... answer auto: the asked name comes back, with web's ClusterIP
    out = c.exec("tmp", "dig", "+noall", "+answer", "+tries=2", "alias.default.svc.cluster.local").stdout
    assert "alias.default.svc.cluster.local." in out and web_ip in out, out
    # autopath: the pod's first search-path query is answered (CNAME to the name found) ...
    out = c.exec("tmp", "dig", "+search", "+noall", "+answer", "+tries=1", "db.legacy.internal").stdout
    assert "db.legacy.internal.default.svc.cluster.local." in out and "CNAME" in out and "10.1.2.3" in out, out
    # ... so the server saw one query for it, not one per search domain
    lines = [ln for ln in logs(c).splitlines() if "db.legacy.internal" in ln and '"A IN' in ln and "+search" not in ln]
    searched = [ln for ln in lines if "db.legacy.internal.default.svc" in ln or "db.legacy.internal.svc" in ln
                or "db.legacy.internal.cluster.local" in ln]
    assert len(searched) == 1, searched

    # a typo: logged as CoreDNS logs it; the last good Corefile keeps answering
    broken = custom.replace("    loop\n", "    lop\n")
    c.kubectl("apply", "-f", "-", input=coredns_corefile(broken))
    c.wait(lambda: "Unknown directive 'lop'" in logs(c), 20, "the reload error in kubectl logs")
    assert "[ERROR] Restart failed: /etc/coredns/Corefile:" in logs(c)
    assert all(a == ["10.1.2.3"] for a in dig_each(c, "db.legacy.internal"))
    assert all(a == [web_ip] for a in dig_each(c, "web.default.svc.cluster.local"))

    metrics = [c.exec("tmp", "curl", "-s", f"http://{p['status']['podIP']}:9153/metrics").stdout for p in dns_pods(c)]
    assert all("coredns_reload_failed_total 1" in m for m in metrics), metrics

    # a good change after the bad one is served, and no query is lost while it is swapped in:
    # dnsperf (bounded: 4 s at most 300 queries/s) asks one coredns pod throughout the reload
    pod_ip = dns_pods(c)[0]["status"]["podIP"]
    qfile = tempfile.NamedTemporaryFile("w", prefix="nsplane-cf-queries-", delete=False)
    qfile.write("web.default.svc.cluster.local A\ndb.legacy.internal A\n")
    qfile.close()
    perf = subprocess.Popen(["ip", "netns", "exec", c.pod_netns("tmp"), "dnsperf", "-s", pod_ip, "-d", qfile.name,
                             "-l", "4", "-Q", "300", "-t", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        time.sleep(1)
        took = apply_and_time(c, custom.replace("10.1.2.3", "10.1.2.4"),
                              lambda: all(a == ["10.1.2.4"] for a in dig_each(c, "db.legacy.internal")))
        out, _ = perf.communicate(timeout=30)
    finally:
        if perf.poll() is None:
            perf.kill()
            perf.wait()
        os.unlink(qfile.name)
    print(f"Corefile fix serving on both coredns pods {took:.2f} s after kubectl apply")
    sent = [ln for ln in out.splitlines() if "Queries sent:" in ln or "Queries lost:" in ln]
    print("dnsperf during the reload:", "; ".join(ln.strip() for ln in sent))
    assert "Queries lost:         0 (0.00%)" in out, out


def test_a_new_pod_with_a_bad_corefile_fails_as_coredns_does(c):
    web_ip = c.get("svc", "web")["spec"]["clusterIP"]
    good = kget(c, "configmap", "-n", "kube-system", "coredns")["data"]["Corefile"]
    c.kubectl("apply", "-f", "-", input=coredns_corefile(good.replace("forward . /etc/resolv.conf",
                                                                "forward . not-an-upstream")))
    c.wait(lambda: "plugin/forward: not an IP address or file" in logs(c), 20, "the reload error")
    victim = dns_pods(c)[0]["metadata"]["name"]
    c.kubectl("delete", "pod", "-n", "kube-system", victim, "--wait=false")

    def crashed():
        pods = kget(c, "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
        new = [p for p in pods if p["metadata"]["name"] != victim and not p["metadata"].get("deletionTimestamp")
               and (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1]
        return new[0]["metadata"]["name"] if new else None
    # the replacement reads the bad Corefile first: it exits 1 with CoreDNS's message, and restarts
    crashed_pod = c.wait(crashed, 40, "the new coredns pod to exit and restart")
    out = c.kubectl("logs", "-n", "kube-system", crashed_pod, "--previous", check=False).stdout
    assert 'plugin/forward: not an IP address or file: "not-an-upstream"' in out, out
    # the pod that kept its last good Corefile still answers through kube-dns
    assert c.exec("tmp", "dig", "+short", "+tries=3", "+time=1", "web.default.svc.cluster.local").stdout.split() \
        == [web_ip]
    c.kubectl("apply", "-f", "-", input=coredns_corefile(good))
