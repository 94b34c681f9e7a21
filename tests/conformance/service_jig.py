"""test/e2e/framework/service's TestJig and the serve-hostname helpers of
test/e2e/network/service.go, as the ported Service conformance specs use
them: services named by the jig with a `testid` label, RCs of agnhost
`serve-hostname` behind them, reachability checked with `nc` from an exec
pod (by name, ClusterIP and node ports) and session affinity with curl."""
from __future__ import annotations

import json
import uuid

from tests.conformance.framework import (
    POD_START_TIMEOUT,
    POLL,
    Framework,
    agnhost_pod,
    pod_ready,
    poll,
    run_host_cmd,
    run_rc,
)

SERVICE_ENDPOINTS_TIMEOUT = 120.0                 # e2eservice.ServiceEndpointsTimeout
SERVICE_REACHABILITY_SHORT_POLL_TIMEOUT = 120.0   # e2eservice.ServiceReachabilityShortPollTimeout
NODE_PORT_RANGE = range(30000, 30000 + 2768)      # e2eservice.NodePortRange
AFFINITY_TIMEOUT = 120.0                          # AffinityTimeout
AFFINITY_CONFIRM_COUNT = 15                       # AffinityConfirmCount
DEFAULT_SERVE_HOSTNAME_SERVICE_PORT = 80
CLUSTER_DNS_DOMAIN = "cluster.local"              # framework.TestContext.ClusterDNSDomain


def serve_hostname_missing() -> str | None:
    """Why the agnhost stand-in cannot run these specs, or None."""
    from agent.node.workloads import AGNHOST_SUBCOMMANDS
    if "serve-hostname" not in AGNHOST_SUBCOMMANDS:
        return ("the agnhost stand-in has no `serve-hostname` (agent/node/workloads: "
                f"{', '.join(AGNHOST_SUBCOMMANDS)}); these specs run RCs of `/agnhost serve-hostname`")
    return None


class TestJig:
    """e2eservice.TestJig."""
    __test__ = False

    def __init__(self, f: Framework, name: str):
        self.f, self.name = f, name
        self.labels = {"testid": f"{name}-{uuid.uuid4()}"}

    # ---- services -------------------------------------------------------
    def _create(self, svc: dict) -> dict:
        return self.sanity_check(self.f.create(svc), svc["spec"].get("type", "ClusterIP"))

    def create_tcp_service(self, tweak=None) -> dict:
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": self.name, "labels": dict(self.labels)},
               "spec": {"selector": dict(self.labels), "ports": [{"protocol": "TCP", "port": 80}]}}
        if tweak:
            tweak(svc)
        return self._create(svc)

    def create_external_name_service(self) -> dict:
        return self._create({"apiVersion": "v1", "kind": "Service",
                             "metadata": {"name": self.name, "labels": dict(self.labels)},
                             "spec": {"selector": dict(self.labels), "externalName": "foo.example.com",
                                      "type": "ExternalName"}})

    def update_service(self, update) -> dict:
        """Get, change, Update; up to 3 tries on conflicts."""
        for _ in range(3):
            svc = self.f.get("service", self.name)
            update(svc)
            r = self.f.kubectl("replace", "-f", "-", "-o", "json", input=json.dumps(svc), check=False)
            if r.returncode == 0:
                return self.sanity_check(json.loads(r.stdout), svc["spec"].get("type", "ClusterIP"))
            if "Conflict" not in r.stderr and "has been modified" not in r.stderr:
                raise AssertionError(f'failed to update Service "{self.name}": {r.stderr.strip()}')
        raise AssertionError(f'too many retries updating Service "{self.name}"')

    @staticmethod
    def sanity_check(svc: dict, svc_type: str) -> dict:
        spec = svc["spec"]
        assert spec.get("type", "ClusterIP") == svc_type, f"unexpected Spec.Type ({spec.get('type')}) for service"
        if svc_type != "ExternalName":
            assert not spec.get("externalName"), "unexpected Spec.ExternalName for service, expected empty"
            assert spec.get("clusterIP"), "didn't get ClusterIP for non-ExternalName service"
        else:
            assert not spec.get("clusterIP"), "unexpected Spec.ClusterIP for ExternalName service, expected empty"
        expect_node_ports = svc_type == "NodePort" or (
            svc_type == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True))
        for i, port in enumerate(spec.get("ports") or []):
            assert bool(port.get("nodePort")) == expect_node_ports, \
                f"unexpected Spec.Ports[{i}].NodePort ({port.get('nodePort')}) for service"
            if port.get("nodePort"):
                assert port["nodePort"] in NODE_PORT_RANGE, f"out-of-range nodePort ({port['nodePort']}) for service"
        return svc

    # ---- pods -------------------------------------------------------------
    def create_service_pods(self, replicas: int) -> None:
        """CreateServicePods: an RC of `serve-hostname --http=false --tcp --udp`."""
        run_rc(self.f, self.name, replicas, ["/agnhost", "serve-hostname", "--http=false", "--tcp", "--udp"],
               self.labels)

    # ---- reachability ------------------------------------------------------------
    def wait_for_available_endpoint(self, timeout: float = SERVICE_ENDPOINTS_TIMEOUT) -> None:
        def available() -> bool:
            for es in self.f.list("endpointslices", f"kubernetes.io/service-name={self.name}"):
                eps = es.get("endpoints") or []
                if eps and eps[0].get("addresses"):
                    return True
            return False
        poll(POLL, timeout, available, what=f"an available endpoint of {self.name}")

    def check_service_reachability(self, svc: dict, pod: dict) -> None:
        svc_type = svc["spec"].get("type", "ClusterIP")
        self.sanity_check(svc, svc_type)
        if svc_type == "ExternalName":
            return self._check_external_service_reachability(svc, pod)
        if svc_type not in ("ClusterIP", "NodePort"):
            raise AssertionError(f'unsupported service type "{svc_type}" in these ports')
        nodes = self._node_addresses() if svc_type == "NodePort" else []
        self.wait_for_available_endpoint()
        for sp in svc["spec"]["ports"]:
            check_endpoint_reachability(self.f, svc["metadata"]["name"], sp["port"], sp["protocol"], pod)
            check_endpoint_reachability(self.f, svc["spec"]["clusterIP"], sp["port"], sp["protocol"], pod)
            for addr in nodes:
                check_endpoint_reachability(self.f, addr, sp["nodePort"], sp["protocol"], pod)

    def _check_external_service_reachability(self, svc: dict, pod: dict) -> None:
        """checkExternalServiceReachability: `nslookup <name>.<ns>.svc.cluster.local`
        succeeds in the pod, polled every framework.Poll for
        ServiceReachabilityShortPollTimeout."""
        svc_name = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.{CLUSTER_DNS_DOMAIN}"
        cmd = f"nslookup {svc_name}"
        try:
            poll(POLL, SERVICE_REACHABILITY_SHORT_POLL_TIMEOUT,
                 lambda: run_host_cmd(self.f, pod["metadata"]["name"], cmd)[1] is None)
        except AssertionError:
            raise AssertionError(f'ExternalName service "{pod["metadata"]["namespace"]}/{pod["metadata"]["name"]}" '
                                 f"failed to resolve to IP within {SERVICE_REACHABILITY_SHORT_POLL_TIMEOUT:g}s") from None

    def _node_addresses(self) -> list[str]:
        """The InternalIPs of at most 2 ready schedulable nodes (GetBoundedReadySchedulableNodes)."""
        out = []
        for node in self.f.list("nodes")[:2]:
            out += [a["address"] for a in node["status"].get("addresses") or [] if a.get("type") == "InternalIP"]
        return out


def check_endpoint_reachability(f: Framework, endpoint: str, port: int, protocol: str, pod: dict) -> None:
    """testEndpointReachability: `echo hostName | nc -v -t|-u -w 2 <endpoint> <port>`
    until it prints something, every second for 2 minutes."""
    flag = {"TCP": "-t", "UDP": "-u"}.get(protocol)
    if flag is None:
        raise AssertionError(f"service reachability check is not supported for {protocol}")
    cmd = f"echo hostName | nc -v {flag} -w 2 {endpoint} {port}"

    def reachable() -> bool:
        stdout, err = run_host_cmd(f, pod["metadata"]["name"], cmd)
        return err is None and stdout.strip() != ""
    try:
        poll(1, SERVICE_REACHABILITY_SHORT_POLL_TIMEOUT, reachable)
    except AssertionError:
        raise AssertionError(f"service is not reachable within {SERVICE_REACHABILITY_SHORT_POLL_TIMEOUT:g}s "
                             f"timeout on endpoint {endpoint}:{port} over {protocol} protocol") from None


# ---- service.go's serve-hostname helpers -------------------------------------------------------

def get_serve_hostname_service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": DEFAULT_SERVE_HOSTNAME_SERVICE_PORT, "targetPort": 9376,
                                "protocol": "TCP"}], "selector": {"name": name}}}


def start_serve_hostname_service(f: Framework, svc: dict, replicas: int) -> tuple[list[str], str]:
    """StartServeHostnameService: the Service, then an RC of `/agnhost serve-hostname`."""
    name = svc["metadata"]["name"]
    f.create(svc)
    pods = run_rc(f, name, replicas, ["/agnhost", "serve-hostname"])
    assert len(pods) == replicas, f"incorrect number of running pods: {len(pods)}"
    service = f.get("service", name)
    assert service["spec"].get("clusterIP"), f"service IP is blank for {name}"
    return sorted(p["metadata"]["name"] for p in pods), service["spec"]["clusterIP"]


def check_affinity(f: Framework, exec_pod: dict, service_ip: str, service_port: int, should_hold: bool) -> None:
    """checkAffinity from an exec pod: 16 curls per try, a try every 30 s for
    2 minutes, until the last 15 answers agree (should_hold) or not."""
    url = f"http://{service_ip}:{service_port}/"
    curl = f"curl -q -s --connect-timeout 2 {url}"
    cmd = f"for i in $(seq 0 {AFFINITY_CONFIRM_COUNT}); do echo; {curl} ; done"
    trace: list[str] = []

    def check() -> bool:
        stdout, err = run_host_cmd(f, exec_pod["metadata"]["name"], cmd)
        if err is None:
            trace.extend(h.strip() for h in stdout.split("\n") if h)
        fulfilled, holds = check_host_trace(trace, AFFINITY_CONFIRM_COUNT)
        return fulfilled and holds == should_hold
    try:
        poll(2 * AFFINITY_CONFIRM_COUNT, AFFINITY_TIMEOUT, check)
    except AssertionError:
        fulfilled, _ = check_host_trace(trace, AFFINITY_CONFIRM_COUNT)
        why = "Connection timed out or not enough responses." if not fulfilled else \
            ("Affinity should hold but didn't." if should_hold else "Affinity shouldn't hold but did.")
        raise AssertionError(f"{why} {trace}") from None


def check_host_trace(trace: list[str], count: int) -> tuple[bool, bool]:
    """affinityTracker.checkHostTrace: (enough answers, the last `count` agree)."""
    fulfilled = len(trace) >= count
    if not trace:
        return fulfilled, True
    last = trace[-count:]
    return fulfilled, all(h == trace[-1] for h in last)


def stop_serve_hostname_service(f: Framework, name: str) -> None:
    """StopServeHostnameService: the RC (its pods collected), then the Service."""
    f.kubectl("delete", "rc", name, "--wait=true", "--timeout=120s", check=False)
    f.kubectl("delete", "service", name, check=False)


# ---- service.go's endpoint validation and pod helpers --------------------------------------------

SERVICE_START_TIMEOUT = 180.0                     # framework.ServiceStartTimeout


def create_pod_or_fail(f: Framework, name: str, labels: dict, container_ports: list[dict], *args: str) -> None:
    """createPodOrFail: an agnhost pod (NewAgnhostPod with the ports and
    args) with the given labels and env FOO=" ", created and waited for
    Running and Ready (PodClient.CreateSync, PodStartTimeout)."""
    pod = agnhost_pod(name=name, args=args, ports=container_ports)
    pod["metadata"]["labels"] = dict(labels)
    pod["spec"]["containers"][0]["env"] = [{"name": "FOO", "value": " "}]
    f.create(pod)

    def ready() -> bool:
        p = f.get("pod", name)
        return (p.get("status") or {}).get("phase") == "Running" and pod_ready(p)
    poll(POLL, POD_START_TIMEOUT, ready, what=f"pod {f.ns}/{name} to be running and ready")


def delete_pod_or_fail(f: Framework, name: str) -> None:
    """e2epod.DeletePodOrFail: Delete with default options; NotFound is fine."""
    r = f.kubectl("delete", "pod", name, "--wait=false", check=False)
    assert r.returncode == 0 or "NotFound" in r.stderr, f"failed to delete pod {name} in namespace {f.ns}: {r.stderr}"


def _ports_by_pod_uid_from_endpoints(ep: dict, with_protocol: bool) -> dict:
    """e2eendpoints.Get(Full)ContainerPortsByPodUID."""
    m: dict = {}
    for ss in ep.get("subsets") or []:
        for port in ss.get("ports") or []:
            for addr in ss.get("addresses") or []:
                uid = (addr.get("targetRef") or {}).get("uid")
                m.setdefault(uid, []).append(
                    (port["port"], port.get("protocol", "TCP")) if with_protocol else port["port"])
    return m


def _ports_by_pod_uid_from_slices(slices: list[dict], with_protocol: bool) -> dict:
    """e2eendpointslice.Get(Full)ContainerPortsByPodUID."""
    m: dict = {}
    for es in slices:
        for port in es.get("ports") or []:
            if port.get("port") is None:
                continue
            for ep in es.get("endpoints") or []:
                uid = (ep.get("targetRef") or {}).get("uid")
                m.setdefault(uid, []).append(
                    (port["port"], port.get("protocol", "TCP")) if with_protocol else port["port"])
    return m


def _validate_ports(got: dict, expected: dict, with_protocol: bool) -> str | None:
    """validatePorts / validatePortsAndProtocols: None when they agree."""
    if len(got) != len(expected):
        return f"invalid number of endpoints got {got}, expected {expected}"
    for uid, want in expected.items():
        if uid not in got:
            return f"endpoint {uid} not found"
        if len(got[uid]) != len(want):
            return f"invalid list of ports for uid {uid}. Got {got[uid]}, expected {want}"
        if with_protocol:
            if any(p not in want for p in got[uid]):
                return f"invalid list of ports for uid {uid}. Got {got[uid]}, expected {want}"
        elif sorted(got[uid]) != sorted(want):
            return f"invalid list of ports for uid {uid}. Got {got[uid]}, expected {want}"
    return None


def validate_endpoints_ports_or_fail(f: Framework, service_name: str, expected: dict,
                                     with_protocol: bool = False) -> None:
    """validateEndpointsPortsOrFail (and ...WithProtocolsOrFail when
    with_protocol: `expected` maps pod names to (port, protocol) pairs): every
    second for ServiceStartTimeout, the Service's Endpoints and then its
    EndpointSlices must expose exactly these pods (by UID) on these ports."""
    by_uid = {f.get("pod", name)["metadata"]["uid"]: list(ports) for name, ports in expected.items()}
    last: list[str] = []

    def validated() -> bool:
        r = f.kubectl("get", "endpoints", service_name, "-o", "json", check=False)
        if r.returncode != 0:
            last[:] = [f"Failed go get Endpoints object: {r.stderr.strip()}"]
            return False
        err = _validate_ports(_ports_by_pod_uid_from_endpoints(json.loads(r.stdout), with_protocol),
                              by_uid, with_protocol)
        if err:
            last[:] = [f"Unexpected endpoints: {err}"]
            return False
        slices = f.list("endpointslices", f"kubernetes.io/service-name={service_name}")
        err = _validate_ports(_ports_by_pod_uid_from_slices(slices, with_protocol), by_uid, with_protocol)
        if err:
            last[:] = [f"Unexpected endpoint slices: {err}"]
            return False
        return True
    try:
        poll(1, SERVICE_START_TIMEOUT, validated)
    except AssertionError:
        raise AssertionError(f"error waiting for service {service_name} in namespace {f.ns} to expose endpoints "
                             f"{expected}: {'; '.join(last)}") from None


def endpoint_reachability(f: Framework, endpoint: str, port: int, protocol: str, pod: dict,
                               timeout: float) -> str | None:
    """service.go's testEndpointReachability (test/e2e/network, with a
    timeout; polls every framework.Poll): None when `echo hostName | nc`
    printed something within the timeout, else the error."""
    flag = {"TCP": "-t", "UDP": "-u"}.get(protocol)
    if flag is None:
        return f"service reachability check is not supported for {protocol}"
    cmd = f"echo hostName | nc -v {flag} -w 2 {endpoint} {port}"

    def reachable() -> bool:
        stdout, err = run_host_cmd(f, pod["metadata"]["name"], cmd)
        return err is None and stdout.strip() != ""
    try:
        poll(POLL, timeout, reachable)
    except AssertionError:
        return f"service is not reachable within {timeout:g}s timeout on endpoint {endpoint} {port} over {protocol} protocol"
    return None
