"""test/e2e/network/dns_common.go, as the ported DNS specs use it: the probe
pod (a `webserver` agnhost test-webserver container plus one querier
container per image, all sharing an emptyDir at /results), the shell loops
of `dig` and `getent` that write an OK file per name, and the polls that
read those files back (every 5 s for 10 minutes).

Upstream reads the files through the API server's pods/proxy subresource
from the webserver container. Where the API server serves pods/proxy we do
the same; where it does not yet, we read the same files from the same
container with `kubectl exec ... cat`: what is checked (the file exists, or
its trimmed content equals the expected value) is unchanged.
"""
from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import pytest

from tests.conformance.framework import (
    AGNHOST,
    Framework,
    agnhost_pod,
    kubelet_gaps,
    poll,
)

JESSIE_DNSUTILS = "registry.k8s.io/e2e-test-images/jessie-dnsutils:1.7"   # imageutils.JessieDnsutils
SLOW_POD_START_TIMEOUT = 900.0      # e2epod.WaitForPodRunningInNamespaceSlow: slowPodStartTimeout


@dataclass(frozen=True)
class DNSQuerier:
    name: str       # container name prefix
    image: str      # container image
    cmd: str        # a shell script in a string


def cluster_domain(f: Framework) -> str:
    """framework.TestContext.ClusterDNSDomain."""
    return f.cluster.cfg.cluster_domain


def skip_unless_probe_pods_run(f: Framework) -> None:
    """The probe pods share files through an emptyDir and use `$$` escapes."""
    gaps = [g for g in kubelet_gaps(f) if "/agnhost" not in g]
    if gaps:
        pytest.skip("needs " + "; ".join(gaps))


def create_service_spec(name: str, external_name: str, headless: bool, selector: dict | None) -> dict:
    """e2eservice.CreateServiceSpec."""
    spec: dict = {"selector": selector} if selector else {}
    if external_name:
        spec.update(type="ExternalName", externalName=external_name)
    else:
        spec["ports"] = [{"port": 80, "name": "http", "protocol": "TCP"}]
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def reverse_addr(ip: str) -> str:
    """dnsclient.Reverseaddr: the PTR name of `ip`, fully qualified."""
    return ipaddress.ip_address(ip).reverse_pointer + "."


def create_probe_command(names: list[str], host_entries: list[str], ptr_lookup_ip: str,
                         prefix: str) -> tuple[str, list[str]]:
    """createProbeCommand: a 600-round loop of dig (UDP and TCP, A or SRV, +search)
    and getent hosts, each writing /results/<prefix>_<proto>@<name> on success.
    `$$` stays as upstream writes it: the kubelet turns it into `$`."""
    files: list[str] = []
    cmd = "for i in `seq 1 600`; do "
    for name in names:
        lookup = f"{name} SRV" if name.startswith("_") else f"{name} A"
        for proto, flag in (("udp", "+notcp"), ("tcp", "+tcp")):
            file = f"{prefix}_{proto}@{name}"
            files.append(file)
            cmd += (f'check="$$(dig {flag} +noall +answer +search {lookup})" && test -n "$$check" '
                    f'&& echo OK > /results/{file};')
    for name in host_entries:
        file = f"{prefix}_hosts@{name}"
        files.append(file)
        cmd += f'test -n "$$(getent hosts {name})" && echo OK > /results/{file};'
    if ptr_lookup_ip:
        ptr = reverse_addr(ptr_lookup_ip)
        for proto, flag in (("udp", "+notcp"), ("tcp", "+tcp")):
            file = f"{ptr_lookup_ip}_{proto}@PTR"
            cmd += (f'check="$$(dig {flag} +noall +answer +search {ptr} PTR)" && test -n "$$check" '
                    f'&& echo OK > /results/{file};')
            files.append(file)
    return cmd + "sleep 1; done", files


def create_targeted_probe_command(name: str, lookup: str, prefix: str) -> tuple[str, str]:
    """createTargetedProbeCommand: `dig +short <name> <type>` into one file, 30 times."""
    file = f"{prefix}_udp@{name}"
    return f"for i in `seq 1 30`; do dig +short {name} {lookup} > /results/{file}; sleep 1; done", file


def probers(make) -> list[DNSQuerier]:
    """The agnhost and jessie queriers, each running make(prefix) -> its command."""
    return [DNSQuerier("agnhost", AGNHOST, make("agnhost")), DNSQuerier("jessie", JESSIE_DNSUTILS, make("jessie"))]


def create_dns_pod(namespace: str, queriers: list[DNSQuerier], hostname: str, subdomain: str) -> dict:
    """createDNSPod: an agnhost pod whose first container (`webserver`) runs
    test-webserver, plus `<name>-querier` containers running `sh -c <cmd>`;
    all mount the `results` emptyDir at /results."""
    mounts = [{"name": "results", "mountPath": "/results"}]
    pod = agnhost_pod(f"dns-test-{uuid.uuid4()}", args=("test-webserver",))
    pod["metadata"]["namespace"] = namespace
    webserver = pod["spec"]["containers"][0]
    webserver.update(name="webserver", volumeMounts=mounts)
    for q in queriers:
        if q.image == AGNHOST:       # e2epod.NewAgnhostContainer, with Command set
            ctr = {**agnhost_pod()["spec"]["containers"][0], "name": q.name + "-querier",
                   "command": ["sh", "-c", q.cmd], "volumeMounts": mounts}
            ctr.pop("args", None)
        else:
            ctr = {"name": q.name + "-querier", "image": q.image, "command": ["sh", "-c", q.cmd],
                   "volumeMounts": mounts}
        pod["spec"]["containers"].append(ctr)
    pod["spec"]["volumes"] = [{"name": "results", "emptyDir": {}}]
    pod["spec"]["hostname"] = hostname
    pod["spec"]["subdomain"] = subdomain
    return pod


def serves_pod_proxy(f: Framework) -> bool:
    return any(r.get("name") == "pods/proxy" for r in f.raw("/api/v1").get("resources") or [])


def read_result(f: Framework, pod: dict, file_dir: str, file: str) -> str | None:
    """The file's content as the webserver container has it, or None."""
    name = pod["metadata"]["name"]
    if serves_pod_proxy(f):
        path = f"/api/v1/namespaces/{f.ns}/pods/{name}/proxy/{file_dir}/{quote(file, safe='@')}"
        r = f.cluster.kubectl("get", "--raw", path, check=False, timeout=30)
    else:
        r = f.kubectl("exec", name, "-c", "webserver", "--", "cat", f"/{file_dir}/{file}", check=False, timeout=30)
    return r.stdout if r.returncode == 0 else None


def assert_files_contain(f: Framework, files: list[str], file_dir: str, pod: dict, check: bool,
                         expected: str) -> None:
    """assertFilesContain: every 5 s for 600 s, until every file reads (and,
    with `check`, holds `expected` once trimmed)."""
    failed: list[str] = []

    def all_there() -> bool:
        failed.clear()
        for file in files:
            contents = read_result(f, pod, file_dir, file)
            if contents is None or (check and contents.strip() != expected):
                failed.append(file)
        return not failed
    try:
        poll(5, 600, all_there)
    except AssertionError:
        raise AssertionError(f"Lookups using {f.ns}/{pod['metadata']['name']} failed for: {failed}") from None


def _run_probe_pod(f: Framework, pod: dict) -> dict:
    name = pod["metadata"]["name"]
    f.create(pod)
    poll(2, SLOW_POD_START_TIMEOUT,
         lambda: (f.get("pod", name).get("status") or {}).get("phase") == "Running",
         what=f"pod {f.ns}/{name} running")
    return f.get("pod", name)      # By("retrieving the pod")


def validate_dns_results(f: Framework, pod: dict, files: list[str]) -> None:
    """validateDNSResults: submit the pod, wait for Running, find every file."""
    try:
        pod = _run_probe_pod(f, pod)
        assert_files_contain(f, files, "results", pod, False, "")
    finally:
        f.kubectl("delete", "pod", pod["metadata"]["name"], "--grace-period=0", "--wait=false", check=False)


def validate_targeted_probe_output(f: Framework, pod: dict, files: list[str], value: str) -> None:
    """validateTargetedProbeOutput: as validateDNSResults, each file holding `value`."""
    try:
        pod = _run_probe_pod(f, pod)
        assert_files_contain(f, files, "results", pod, True, value)
    finally:
        f.kubectl("delete", "pod", pod["metadata"]["name"], "--grace-period=0", "--wait=false", check=False)
