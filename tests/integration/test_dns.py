"""Cluster DNS and service discovery on a real single-node cluster:
the coredns pods behind kube-dns (10.96.0.10) answer the real `dig`,
`nslookup` and `curl` run inside a pod namespace, so every query crosses the
kube-proxy DNAT; plus the Docker-link environment variables. One cluster
serves the module and is torn down (and checked for leftovers) at the end."""
import re
import subprocess
import threading
import time

import pytest

from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import AGNHOST, deployment, documents, netexec, service

pytestmark = pytest.mark.integration

DOMAIN = "cluster.local"
DNS_IP = "10.96.0.10"

WEB = documents(
    deployment("web", replicas=2, ports=[80], readiness=("/", 80)),
    service("web", type="ClusterIP", selector={"app": "web"}, ports=[{"port": 80, "targetPort": 80}]))

ECHO = documents(
    deployment("echo", image=AGNHOST, replicas=2, args=netexec(8080), ports=[("http", 8080)],
               readiness=("/healthz", "http")),
    service("echo", selector={"app": "echo"}, ports=[{"name": "http", "port": 80, "targetPort": "http"}]),
    service("echo-headless", clusterIP="None", selector={"app": "echo"},
            ports=[{"name": "http", "port": 8080, "targetPort": "http"}]))

EXTERNAL = service("ext", type="ExternalName", externalName="web.default.svc.cluster.local")
EXT_AS_CLUSTERIP = service("ext", type="ClusterIP", selector={"app": "web"}, ports=[{"port": 80, "targetPort": 80}])


def plain_service(name: str, port_name: str | None = None) -> str:
    """A Service for the web pods, port 80 (named `port_name` when given)."""
    port = {"name": port_name} if port_name else {}
    return service(name, selector={"app": "web"}, ports=[{**port, "port": 80, "targetPort": 80}])


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster"))) as tc:
        tc.apply(WEB)
        tc.apply(ECHO)
        # tmp starts after web and echo exist, so it carries their variables.
        tc.nsplane("run", "tmp", "--image=curlimages/curl", "--", "sleep", "3600")
        tc.wait_ready("run=tmp", 1, timeout=30)
        tc.wait_ready("app=web", 2, timeout=30)
        tc.wait_ready("app=echo", 2, timeout=30)
        tc.wait(lambda: len(coredns_pods(tc)) == 2, 30, "2 ready coredns pods")
        tc.wait(lambda: dig_short(tc, f"web.default.svc.{DOMAIN}") == [cluster_ip(tc, "web")], 30,
                "cluster DNS answering for web")
        yield tc


# ---- queries and polling from pod tmp ------------------------------------

def cluster_ip(c, name: str) -> str:
    return c.get("svc", name)["spec"]["clusterIP"]


def is_ready(pod: dict) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and any(
        k["type"] == "Ready" and k["status"] == "True" for k in pod["status"].get("conditions", []))


def coredns_pods(c) -> list[dict]:
    return [p for p in c.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"] if is_ready(p)]


def dig(c, *args: str):
    """The real dig in pod tmp; bounded by its own retries."""
    return c.exec("tmp", "dig", "+tries=2", "+time=1", *args)


def dig_short(c, *args: str) -> list[str]:
    return dig(c, "+short", *args).stdout.split()


def status(out: str) -> str:
    m = re.search(r"status: ([A-Z]+)", out)
    return m.group(1) if m else f"no status in {out!r}"


def answers(out: str) -> list[tuple[str, str, str]]:
    """(owner, type, data) per record of a `dig +noall +answer` output."""
    rows = [line.split(None, 4) for line in out.splitlines() if line and not line.startswith(";")]
    return [(r[0], r[3], r[4]) for r in rows if len(r) == 5]


NOW_MS = "$(($(date +%s%N) / 1000000))"


def poll_in_pod(c, condition: str, seconds: float = 8.0) -> tuple[bool, float]:
    """Run a shell loop inside tmp until `condition` (a shell test, typically
    around one dig) holds, for at most `seconds` and 400 rounds; returns
    (held, wall seconds including the exec)."""
    script = f"end=$(({NOW_MS} + {int(seconds * 1000)})); i=0; " \
             f"while [ $i -lt 400 ] && [ {NOW_MS} -lt $end ]; do " \
             f"if {condition}; then echo OK; exit 0; fi; i=$((i+1)); sleep 0.02; done; echo TIMEOUT"
    t0 = time.monotonic()
    r = c.exec("tmp", "sh", "-c", script, timeout=seconds + 15)
    return r.stdout.strip().endswith("OK"), time.monotonic() - t0


# ---- kube-dns and the pod's resolver -----------------------------------

def test_kube_dns_service_listed_in_kube_system(c):
    out = c.nsplane("get", "svc", "-n", "kube-system").stdout.splitlines()
    assert out[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["kube-dns"][1:5] == ["ClusterIP", DNS_IP, "<none>", "53/UDP,53/TCP,9153/TCP"]


def test_pod_resolv_conf_is_cluster_first(c):
    lines = [line.strip() for line in c.exec("tmp", "cat", "/etc/resolv.conf").stdout.splitlines()]
    assert f"search default.svc.{DOMAIN} svc.{DOMAIN} {DOMAIN}" in lines
    assert f"nameserver {DNS_IP}" in lines
    assert "options ndots:5" in lines
    assert [x for x in lines if x.startswith("nameserver")] == [f"nameserver {DNS_IP}"]
    # what `ip netns exec` shows every process of the pod's namespace
    seen = subprocess.run(["ip", "netns", "exec", c.pod_netns("tmp"), "cat", "/etc/resolv.conf"],
                          capture_output=True, text=True, timeout=10).stdout.splitlines()
    assert [x.strip() for x in seen] == lines


def test_coredns_reads_its_token_where_a_service_account_has_it(c):
    """The coredns stand-in runs in a container that sees exactly its token
    and CA of the cluster's state, read-only, at the service account's paths."""
    pod = coredns_pods(c)[0]["metadata"]["name"]
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    r = c.nsplane("exec", "-n", "kube-system", pod, "--", "sh", "-c",
                  f"ls {sa}; echo $NSPLANE_API_TOKEN_FILE $NSPLANE_API_CA_FILE; touch {sa}/token; "
                  f"ls {c.cfg.dir}", check=False)
    assert r.stdout.splitlines() == ["ca.crt", "token", f"{sa}/token {sa}/ca.crt"], r.stdout
    assert "Read-only file system" in r.stderr and "No such file or directory" in r.stderr
    with open(c.cfg.token_file("coredns")) as f:
        token = f.read()
    assert c.nsplane("exec", "-n", "kube-system", pod, "--", "cat", f"{sa}/token").stdout == token


# ---- the Service chapter's lookups ---------------------------------------

@pytest.mark.parametrize("name,service", [
    ("web", "web"),
    (f"web.default.svc.{DOMAIN}", "web"),
    (f"kubernetes.default.svc.{DOMAIN}", "kubernetes"),
])
def test_chapter_nslookups(c, name, service):
    r = c.exec("tmp", "nslookup", "-timeout=2", name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(rf"^Server:\s+{re.escape(DNS_IP)}$", r.stdout, re.M), r.stdout
    fqdn = f"{service}.default.svc.{DOMAIN}"
    assert re.search(rf"^Name:\s+{re.escape(fqdn)}$", r.stdout, re.M), r.stdout
    answer = r.stdout.split("\nName:", 1)[1]      # Address lines after the Server block
    addresses = re.findall(r"^Address:\s+(\S+)$", answer, re.M)
    assert addresses == [cluster_ip(c, service)], r.stdout


@pytest.mark.parametrize("url", ["http://web", "http://web.default", f"http://web.default.svc.{DOMAIN}"])
def test_curl_by_name_reaches_nginx(c, url):
    r = c.exec("tmp", "curl", "-sS", "--max-time", "5", url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("<!DOCTYPE html>") and "Welcome to nginx!" in r.stdout


# ---- records ------------------------------------------------------------

def test_srv_for_named_port(c):
    got = dig_short(c, "SRV", f"_http._tcp.echo.default.svc.{DOMAIN}")
    assert got == ["0", "100", "80", f"echo.default.svc.{DOMAIN}."]


def test_srv_answer_has_a_glue(c):
    r = dig(c, "+noall", "+additional", "SRV", f"_http._tcp.echo.default.svc.{DOMAIN}")
    assert (f"echo.default.svc.{DOMAIN}.", "A", cluster_ip(c, "echo")) in answers(r.stdout), r.stdout


def test_reverse_lookup_of_cluster_ip(c):
    assert dig_short(c, "-x", cluster_ip(c, "web")) == [f"web.default.svc.{DOMAIN}."]


def test_lookup_over_tcp(c):
    r = dig(c, "+tcp", f"kubernetes.default.svc.{DOMAIN}")
    assert status(r.stdout) == "NOERROR", r.stdout
    assert f"SERVER: {DNS_IP}#53({DNS_IP}) (TCP)" in r.stdout, r.stdout
    assert (f"kubernetes.default.svc.{DOMAIN}.", "A", "10.96.0.1") in answers(r.stdout), r.stdout


def test_headless_service_answers_each_ready_pod(c):
    ips = sorted(p["status"]["podIP"] for p in c.wait_ready("app=echo", 2, timeout=30))
    name = f"echo-headless.default.svc.{DOMAIN}"
    got = c.wait(lambda: (g := sorted(dig_short(c, name))) == ips and g, 10, f"headless A records {ips}")
    assert got == ips


def test_unknown_name_is_nxdomain(c):
    r = dig(c, f"nosuch.default.svc.{DOMAIN}")
    assert status(r.stdout) == "NXDOMAIN", r.stdout


def test_dns_version_txt(c):
    assert dig_short(c, f"dns-version.{DOMAIN}", "TXT") == ['"1.1.0"']


def test_existing_name_without_that_type_is_nodata_with_soa(c):
    r = dig(c, "AAAA", f"web.default.svc.{DOMAIN}")
    assert status(r.stdout) == "NOERROR" and "ANSWER: 0," in r.stdout, r.stdout
    assert re.search(rf"^{re.escape(DOMAIN)}\.\s+\d+\s+IN\s+SOA\s", r.stdout, re.M), r.stdout


def test_matching_ignores_case_and_echoes_it(c):
    r = dig(c, "+noall", "+answer", f"WEB.Default.svc.{DOMAIN}")
    assert answers(r.stdout) == [(f"WEB.Default.svc.{DOMAIN}.", "A", cluster_ip(c, "web"))], r.stdout


def test_pod_a_record(c):
    ip = c.get("pod", "tmp")["status"]["podIP"]
    assert dig_short(c, f"{ip.replace('.', '-')}.default.pod.{DOMAIN}") == [ip]


def test_restarted_pod_new_ip_in_headless_answers(c):
    name = f"echo-headless.default.svc.{DOMAIN}"
    victim = c.wait_ready("app=echo", 2, timeout=30)[0]
    c.nsplane("delete", "pod", victim["metadata"]["name"], timeout=40)
    pods = c.wait(lambda: (p := c.ready_pods("app=echo")) and len(p) == 2 and
                  victim["metadata"]["name"] not in {x["metadata"]["name"] for x in p} and p, 30, "echo replaced")
    ips = sorted(p["status"]["podIP"] for p in pods)
    listed = f'$(dig +tries=1 +time=1 +short {name} | sort | tr "\\n" " ")'
    held, took = poll_in_pod(c, f'[ "{listed}" = "{" ".join(ips)} " ]')
    assert held, f"headless {ips} seen={held} after {took:.2f}s"


# ---- changes ------------------------------------------------------------

def test_external_name_then_cluster_ip(c):
    web_ip = cluster_ip(c, "web")
    name = f"ext.default.svc.{DOMAIN}"
    try:
        c.apply(EXTERNAL)
        r = c.wait(lambda: (r := dig(c, "+noall", "+answer", name)).stdout.strip() and r, 10, "ext answer")
        assert [(o, t, d) for o, t, d in answers(r.stdout)] == [
            (f"{name}.", "CNAME", f"web.default.svc.{DOMAIN}."),
            (f"web.default.svc.{DOMAIN}.", "A", web_ip)], r.stdout
        assert "configured" in c.apply(EXT_AS_CLUSTERIP)
        ip = cluster_ip(c, "ext")
        assert ip not in ("", "None", web_ip)
        held, took = poll_in_pod(c, f'[ "$(dig +tries=1 +time=1 +short {name})" = "{ip}" ]')
        assert held, f"A {ip} for {name} seen={held} after {took:.1f}s"
        assert answers(dig(c, "+noall", "+answer", name).stdout) == [(f"{name}.", "A", ip)]
    finally:
        c.nsplane("delete", "svc", "ext", check=False)


def test_service_created_and_deleted_shows_in_dns(c):
    """Polled from the moment the API has answered the apply/delete (within
    poll_in_pod's bound; how fast is tests/bench's business, not a test's)."""
    name = f"flash.default.svc.{DOMAIN}"
    try:
        c.apply(plain_service("flash"))
        held, took = poll_in_pod(c, f'[ -n "$(dig +tries=1 +time=1 +short {name})" ]')
        assert held, f"{name} seen={held} {took:.2f}s after apply"
        assert dig_short(c, name) == [cluster_ip(c, "flash")]
    finally:
        c.nsplane("delete", "svc", "flash", check=False)
    held, took = poll_in_pod(c, f"dig +tries=1 +time=1 {name} | grep -q 'status: NXDOMAIN'")
    assert held, f"{name} NXDOMAIN seen={held} {took:.2f}s after delete"


def test_port_rename_shows_in_srv(c):
    try:
        c.apply(plain_service("renamed", port_name="http"))
        c.wait(lambda: dig_short(c, "SRV", f"_http._tcp.renamed.default.svc.{DOMAIN}"), 10, "SRV _http")
        c.apply(plain_service("renamed", port_name="www"))
        srv = f"_www._tcp.renamed.default.svc.{DOMAIN}"
        held, took = poll_in_pod(c, f'[ -n "$(dig +tries=1 +time=1 +short SRV {srv})" ]')
        assert held, f"SRV _www seen={held} after {took:.2f}s"
        r = dig(c, "SRV", f"_http._tcp.renamed.default.svc.{DOMAIN}")
        assert status(r.stdout) == "NXDOMAIN", r.stdout
    finally:
        c.nsplane("delete", "svc", "renamed", check=False)


# ---- environment variables ----------------------------------------------

def test_service_environment_variables(c):
    try:
        c.apply(plain_service("late"))     # created after tmp started: not in its environment
        env = dict(line.split("=", 1) for line in c.exec("tmp", "env").stdout.splitlines() if "=" in line)
    finally:
        c.nsplane("delete", "svc", "late", check=False)
    web, echo = cluster_ip(c, "web"), cluster_ip(c, "echo")
    assert env.get("WEB_SERVICE_HOST") == web
    assert env.get("WEB_SERVICE_PORT") == "80"
    assert env.get("WEB_PORT") == f"tcp://{web}:80"
    assert env.get("WEB_PORT_80_TCP") == f"tcp://{web}:80"
    assert env.get("WEB_PORT_80_TCP_PROTO") == "tcp"
    assert env.get("WEB_PORT_80_TCP_PORT") == "80"
    assert env.get("WEB_PORT_80_TCP_ADDR") == web
    assert env.get("ECHO_SERVICE_HOST") == echo and env.get("ECHO_SERVICE_PORT_HTTP") == "80"
    assert env.get("KUBERNETES_SERVICE_HOST") == "10.96.0.1"
    assert env.get("KUBERNETES_SERVICE_PORT") == "443"
    assert not any(k.startswith("LATE_") for k in env)
    assert "ECHO_HEADLESS_SERVICE_HOST" not in env      # headless Services get no variables


# ---- availability -------------------------------------------------------

def test_dns_keeps_answering_while_a_coredns_replica_is_deleted(c):
    pods = coredns_pods(c)
    assert len(pods) == 2
    victim = pods[0]["metadata"]["name"]
    web_ip = cluster_ip(c, "web")
    name = f"web.default.svc.{DOMAIN}"
    deleted: list = []
    worker = threading.Thread(target=lambda: deleted.append(
        c.nsplane("delete", "pod", victim, "-n", "kube-system", check=False, timeout=40)))
    worker.start()
    results = []
    try:    # ten lookups at least, and on until the deletion has finished
        while len(results) < 40 and (len(results) < 10 or worker.is_alive()):
            results.append(dig_short(c, name))
            time.sleep(0.1)
    finally:
        worker.join(45)
    assert deleted and deleted[0].returncode == 0, deleted and deleted[0].stderr
    assert len(results) >= 10 and not worker.is_alive(), f"{len(results)} lookups while deleting {victim}"
    assert results == [[web_ip]] * len(results), results
    back = c.wait(lambda: (p := coredns_pods(c)) and len(p) == 2 and p, 30, "coredns back to 2 ready")
    assert victim not in {p["metadata"]["name"] for p in back}
    assert dig_short(c, name) == [web_ip]


def test_terminating_coredns_replica_keeps_answering_in_lameduck(c):
    """The mechanism that makes the test above reliable: a replica asked to
    stop keeps answering for its lameduck (5 s in kubeadm's Corefile) while
    kube-proxy takes it out of kube-dns; queried directly by pod IP here."""
    c.wait(lambda: len(coredns_pods(c)) == 2, 30, "2 ready coredns pods")
    victim = coredns_pods(c)[0]
    ip, web_ip = victim["status"]["podIP"], cluster_ip(c, "web")
    script = f"end=$(({NOW_MS} + 3000)); i=0; while [ $i -lt 200 ] && [ {NOW_MS} -lt $end ]; do " \
             f"dig +tries=1 +time=1 +short @{ip} web.default.svc.{DOMAIN} 2>&1 | head -1; i=$((i+1)); " \
             f"sleep 0.01; done"
    out: list = []
    loop = threading.Thread(target=lambda: out.append(c.exec("tmp", "sh", "-c", script, timeout=40)))
    loop.start()
    try:
        time.sleep(0.5)     # the loop is running before the deletion is asked for
        c.nsplane("delete", "pod", victim["metadata"]["name"], "-n", "kube-system", "--wait=false")
    finally:
        loop.join(45)
    lines = out[0].stdout.splitlines()
    assert len(lines) >= 20 and set(lines) == {web_ip}, (len(lines), sorted(set(lines)))
