"""The Service checks of Kubernetes' "Debug Services" guide, in its order,
over facts already collected (agent/cli/doctor/facts.py). Pure.

`diagnose(facts)` returns one `Check` per step: "ok" (✓), "fail" (✗),
"warn" (!) or "skip" (a step that cannot be judged because an earlier one
failed). Each carries its evidence and, when not ok, the fix. The first
"fail" is the broken link.

The facts are a plain dict:
    namespace, name, service (the object or None), pods (every pod of the
    namespace), events (Events of those pods), slices (the Service's
    EndpointSlices), listening ({pod name: [(proto, port), ...]} as read in
    the pod's network namespace; a pod missing means "not read"),
    node_rules ({node: {table: {chain: [-A lines]}}} in iptables mode, the
    node's `table ip kube-proxy` as an NftRuleset in nftables mode),
    nodes ([node names]),
    dns ({"name", "answers": [ips], "error", "from"}), client (an IP or None),
    via_node (the node the client's external traffic arrives at, or None).
"""
from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass

from agent.api import selectors
from agent.cli.doctor import nftrules, rules
from dataplane.nft.ruleset import NftRuleset

OK, FAIL, WARN, SKIP = "ok", "fail", "warn", "skip"
MARKS = {OK: "✓", FAIL: "✗", WARN: "!", SKIP: "-"}


@dataclass
class Check:
    name: str
    status: str
    evidence: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# ---- small helpers -----------------------------------------------------

def _labels(pod: dict) -> dict:
    return pod.get("metadata", {}).get("labels") or {}


def _pname(pod: dict) -> str:
    return pod["metadata"]["name"]


def selected(svc: dict, pods: list[dict]) -> list[dict]:
    sel = selectors.from_map(svc["spec"].get("selector"))
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and sel.matches(_labels(p))]


def _is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or [])


def _pairs(selector: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def near_matches(selector: dict, pods: list[dict]) -> list[tuple[str, int]]:
    """Label pairs of `pods` that nearly match `selector`: for a pair of the
    selector, the pods' pairs with the same key and a similar value, or a
    similar key and the same value, among pods that match every other pair.
    Returns [(suggested full selector "k=v,...", pod count)], best first."""
    found: dict[str, int] = {}
    for key, value in selector.items():
        rest = {k: v for k, v in selector.items() if k != key}
        for pod in pods:
            labels = _labels(pod)
            if any(labels.get(k) != v for k, v in rest.items()):
                continue
            for lk, lv in labels.items():
                if (lk, lv) == (key, value):
                    continue
                same_key = lk == key and difflib.SequenceMatcher(None, lv, value).ratio() >= 0.6
                same_value = lv == value and difflib.SequenceMatcher(None, lk, key).ratio() >= 0.6
                if same_key or same_value:
                    guess = _pairs({**rest, lk: lv})
                    found[guess] = found.get(guess, 0) + 1
    return sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))


def not_ready_reason(pod: dict, events: list[dict]) -> str:
    """Why a pod is not Ready, in the kubelet's words (waiting reason and
    message, last termination, failing probe Event, scheduling)."""
    st = pod.get("status", {})
    for cond in st.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"not scheduled: {cond.get('reason', '')}: {cond.get('message', '')}".rstrip(": ")
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            last = (cs.get("lastState") or {}).get("terminated")
            tail = f" (last exit code {last.get('exitCode')}, {last.get('reason', '')})" if last else ""
            msg = waiting.get("message", "")
            return f"container {cs['name']}: {waiting['reason']}{': ' + msg if msg else ''}{tail}"
        term = (cs.get("state") or {}).get("terminated")
        if term:
            return f"container {cs['name']}: terminated, {term.get('reason', '')} exit code {term.get('exitCode')}"
    mine = [e for e in events if (e.get("involvedObject") or {}).get("name") == _pname(pod)
            and e.get("reason") == "Unhealthy"]
    if mine:
        last = max(mine, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return f"{last.get('message', 'probe failed')} (Unhealthy x{last.get('count', 1)})"
    phase = st.get("phase", "Pending")
    return f"phase {phase}, Ready condition not True yet"


def parse_ss(text: str) -> list[tuple[str, int]]:
    """`ss -Htuln` output -> [(proto "TCP"/"UDP", port)], sorted, unique."""
    out = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[0] not in ("tcp", "udp"):
            continue
        port = parts[4].rpartition(":")[2]
        if port.isdigit():
            out.add((parts[0].upper(), int(port)))
    return sorted(out)


def resolve_target(port: dict, pod: dict) -> int | None:
    """The container port a Service port's targetPort means in `pod`
    (a name is looked up among the containers' ports; None: not found)."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for c in pod["spec"].get("containers", []):
        for cp in c.get("ports") or []:
            if cp.get("name") == target and cp.get("protocol", "TCP") == port.get("protocol", "TCP"):
                return cp["containerPort"]
    return None


def _declared(pod: dict) -> list[tuple[str, int]]:
    return sorted({(cp.get("protocol", "TCP"), cp["containerPort"])
                   for c in pod["spec"].get("containers", []) for cp in c.get("ports") or []})


def _fmt_ports(ports) -> str:
    return ", ".join(f"{p}/{proto}" for proto, p in ports) or "none"


def ready_endpoint_ips(slices: list[dict]) -> set[str]:
    return {a for s in slices for ep in s.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready", True) for a in ep.get("addresses") or []}


# ---- the checks --------------------------------------------------------

def check_service(f: dict) -> Check:
    svc, ns, name = f.get("service"), f["namespace"], f["name"]
    if svc is None:
        return Check("service", FAIL, f'services "{name}" not found in namespace {ns}',
                     f"check the name and namespace: `kubectl get svc -n {ns}` (or -A); create it with "
                     f"`kubectl expose deployment ... --name {name}`")
    spec = svc["spec"]
    ports = ", ".join(f"{p.get('name') + ' ' if p.get('name') else ''}{p['port']}/{p.get('protocol', 'TCP')}"
                      f"->{p.get('targetPort', p['port'])}" + (f" (nodePort {p['nodePort']})" if p.get("nodePort") else "")
                      for p in spec.get("ports") or [])
    return Check("service", OK, f"service {ns}/{name}: type {spec.get('type', 'ClusterIP')}, "
                                f"clusterIP {spec.get('clusterIP', '')}, ports {ports or 'none'}")


def check_selector(f: dict) -> Check:
    svc, pods = f["service"], f["pods"]
    sel = svc["spec"].get("selector") or {}
    if not sel:
        return Check("selector", WARN, "the Service has no selector: its EndpointSlices are managed by hand",
                     "make sure your EndpointSlices carry kubernetes.io/service-name="
                     f"{f['name']} and list the backends")
    chosen = selected(svc, pods)
    if chosen:
        return Check("selector", OK, f"selector {_pairs(sel)} matches {len(chosen)} pod(s): "
                                     + ", ".join(_pname(p) for p in chosen))
    near = near_matches(sel, pods)
    evidence = f"selector {_pairs(sel)} matches 0 pods in namespace {f['namespace']}"
    if near:
        evidence += "; pods with a similar label: " + ", ".join(f"{s} ({n})" for s, n in near)
        return Check("selector", FAIL, evidence + f" — did you mean {near[0][0]}?",
                     f"fix the Service's spec.selector to {near[0][0]} (or the pods' labels): "
                     f"`kubectl edit svc {f['name']}`")
    return Check("selector", FAIL, evidence + f" ({len(pods)} pod(s) in the namespace, none similar)",
                 "create the pods (is the Deployment in this namespace?), or fix spec.selector; "
                 "`kubectl get pods --show-labels`")


def check_ready(f: dict) -> Check:
    chosen = selected(f["service"], f["pods"])
    bad = [(p, not_ready_reason(p, f.get("events") or [])) for p in chosen if not _is_ready(p)]
    if not bad:
        return Check("pods-ready", OK, f"{len(chosen)} of {len(chosen)} selected pod(s) Ready")
    evidence = f"{len(chosen) - len(bad)} of {len(chosen)} selected pod(s) Ready; " + "; ".join(
        f"{_pname(p)}: {why}" for p, why in bad)
    status = FAIL if len(bad) == len(chosen) else WARN
    return Check("pods-ready", status, evidence,
                 f"`kubectl describe pod {_pname(bad[0][0])}` and `kubectl logs {_pname(bad[0][0])}`: "
                 "fix the probe, the image or the container's config; only Ready pods receive traffic")


def check_target_port(f: dict) -> Check:
    svc = f["service"]
    chosen = selected(svc, f["pods"])
    listening = f.get("listening") or {}
    problems, seen = [], []
    for port in svc["spec"].get("ports") or []:
        proto = port.get("protocol", "TCP")
        for pod in chosen:
            target = resolve_target(port, pod)
            if target is None:
                problems.append(f"port {port['port']}: targetPort {port.get('targetPort')!r} names no "
                                f"{proto} port of pod {_pname(pod)} (declared: {_fmt_ports(_declared(pod))})")
                continue
            heard = listening.get(_pname(pod))
            if heard is None:
                continue
            if (proto, target) not in heard and proto != "SCTP":
                problems.append(f"port {port['port']}: nothing listens on {target}/{proto} in pod {_pname(pod)} "
                                f"(listening: {_fmt_ports(heard)}; declared: {_fmt_ports(_declared(pod))})")
            else:
                seen.append(f"{_pname(pod)} {target}/{proto}")
    if problems:
        return Check("target-port", FAIL, "; ".join(problems),
                     "set the Service's targetPort to the port the container listens on (`kubectl edit svc "
                     f"{f['name']}`), or name it with the container port's name")
    if not seen:
        return Check("target-port", SKIP, "no running selected pod whose sockets could be read")
    return Check("target-port", OK, "listening: " + ", ".join(seen))


def check_endpoints(f: dict) -> Check:
    svc = f["service"]
    have = ready_endpoint_ips(f.get("slices") or [])
    want = {p.get("status", {}).get("podIP") for p in selected(svc, f["pods"]) if _is_ready(p)} - {None}
    names = ", ".join(s["metadata"]["name"] for s in f.get("slices") or []) or "none"
    if not have:
        return Check("endpoints", FAIL, f"EndpointSlices ({names}) list no ready endpoint: connections to the "
                                        f"Service are rejected (\"has no endpoints\")",
                     "make a selected pod Ready (see the checks above); `kubectl get endpointslices -l "
                     f"kubernetes.io/service-name={f['name']}`")
    if svc["spec"].get("selector") and want != have:
        return Check("endpoints", FAIL, f"EndpointSlices list {sorted(have)}, the Ready pods are {sorted(want)}",
                     "the EndpointSlice controller has not caught up: check the server's log")
    return Check("endpoints", OK, f"EndpointSlices {names} list {len(have)} ready endpoint(s): "
                                  + ", ".join(sorted(have)))


def check_node_rules(f: dict) -> Check:
    svc = f["service"]
    n_ready = len(ready_endpoint_ips(f.get("slices") or []))
    bad, good = [], []
    for node in f.get("nodes") or []:
        tables = (f.get("node_rules") or {}).get(node)
        if tables is None:
            bad.append(f"{node}: rules not readable")
            continue
        if isinstance(tables, NftRuleset):  # kube-proxy's nftables mode: table ip kube-proxy
            found = nftrules.check_node(tables, svc, n_ready)
        else:
            found = rules.check_node(tables, f["namespace"], f["name"], svc, n_ready)
        (good if found[0] else bad).append(f"{node}: {found[1]}")
    if bad:
        return Check("node-rules", FAIL, "; ".join(bad),
                     "kube-proxy on that node has not synced: check the node agent's log "
                     "(<state>/logs) and `nsplane up` to restart it")
    return Check("node-rules", OK, "; ".join(good) or "no nodes")


def check_dns(f: dict) -> Check:
    d = f.get("dns") or {}
    svc = f["service"]
    if not d:
        return Check("dns", SKIP, "no running pod to resolve from")
    want = svc["spec"].get("clusterIP")
    got = d.get("answers") or []
    where = d.get("from", "a pod")
    if d.get("error") or not got:
        servers = f"; kube-dns has {d['servers_ready']} ready endpoint(s)" if "servers_ready" in d else ""
        return Check("dns", FAIL, f"{d['name']} from {where}: {d.get('error') or 'no A record (NXDOMAIN)'}{servers}",
                     "check the DNS pods (`kubectl get pods -n kube-system -l k8s-app=kube-dns`) and the "
                     "pod's /etc/resolv.conf")
    if want and want != "None" and want not in got:
        return Check("dns", FAIL, f"{d['name']} from {where} answered {got}, the clusterIP is {want}",
                     "the DNS server is stale: check its log")
    return Check("dns", OK, f"{d['name']} from {where} -> {', '.join(got)}")


def check_etp_local(f: dict) -> Check:
    svc = f["service"]
    spec = svc["spec"]
    if spec.get("type") not in ("NodePort", "LoadBalancer") or spec.get("externalTrafficPolicy") != "Local":
        return Check("external-traffic-policy", OK, f"externalTrafficPolicy {spec.get('externalTrafficPolicy', 'Cluster')}"
                     " (or not an external Service): every node forwards external traffic")
    local = {ep.get("nodeName") for s in f.get("slices") or [] for ep in s.get("endpoints") or []
             if (ep.get("conditions") or {}).get("ready", True)}
    without = [n for n in f.get("nodes") or [] if n not in local]
    if not without:
        return Check("external-traffic-policy", OK, "externalTrafficPolicy Local: every node has a local endpoint")
    evidence = (f"externalTrafficPolicy Local: {', '.join(without)} ha{'s' if len(without) == 1 else 've'} no "
                "local endpoint, so external traffic arriving there is dropped (healthCheckNodePort "
                f"{spec.get('healthCheckNodePort', '?')} answers 503 there)")
    via = f.get("via_node")
    status = FAIL if len(without) == len(f.get("nodes") or []) or via in without else WARN
    if via in without:
        evidence = f"client traffic arrives at {via}, which has no local endpoint: it is dropped; " + evidence
    return Check("external-traffic-policy", status, evidence,
                 "send external traffic only to nodes with a ready pod, spread the pods over every node "
                 "(a DaemonSet), or use externalTrafficPolicy: Cluster")


def check_source_ranges(f: dict) -> Check:
    spec = f["service"]["spec"]
    ranges = spec.get("loadBalancerSourceRanges") or []
    if not ranges:
        return Check("source-ranges", OK, "no loadBalancerSourceRanges: every client may reach the load balancer")
    client = f.get("client")
    nft = any(isinstance(t, NftRuleset) for t in (f.get("node_rules") or {}).values())
    where = "the Service's firewall- chain (nftables, @firewall-ips)" if nft else "KUBE-FW (iptables)"
    if client and not any(rules.in_cidr(client, r) for r in ranges):
        return Check("source-ranges", FAIL, f"client {client} is outside loadBalancerSourceRanges "
                                            f"{', '.join(ranges)}: its packets are dropped in {where}",
                     "add the client's range to spec.loadBalancerSourceRanges")
    return Check("source-ranges", OK, f"loadBalancerSourceRanges {', '.join(ranges)}"
                 + (f" admit client {client}" if client else f": other clients are dropped in {where}"))


STEPS = [check_selector, check_ready, check_target_port, check_endpoints, check_node_rules, check_dns,
         check_etp_local, check_source_ranges]
STEP_NAMES = ["selector", "pods-ready", "target-port", "endpoints", "node-rules", "dns",
              "external-traffic-policy", "source-ranges"]


def diagnose(f: dict) -> list[Check]:
    """Every check, in the guide's order. A missing Service skips the rest;
    a selector matching nothing skips the pod checks."""
    first = check_service(f)
    if first.status == FAIL:
        return [first] + [Check(n, SKIP, "the Service does not exist") for n in STEP_NAMES]
    spec = f["service"]["spec"]
    if spec.get("type") == "ExternalName":
        why = (f"type ExternalName: DNS answers {f['name']}.{f['namespace']}.svc with a CNAME to "
               f"{spec.get('externalName', '')}; nothing is proxied")
        return [first] + [Check(n, SKIP, why) for n in STEP_NAMES]
    out = [first]
    no_pods = False
    for step, name in zip(STEPS, STEP_NAMES):
        if not spec.get("selector") and name in ("pods-ready", "target-port"):
            out.append(Check(name, SKIP, "no selector: the Service does not choose pods"))
            continue
        if no_pods and name in ("pods-ready", "target-port"):
            out.append(Check(name, SKIP, "no pod is selected"))
            continue
        out.append(step(f))
        if name == "selector" and out[-1].status == FAIL:
            no_pods = True
    return out


def first_broken(checks: list[Check]) -> Check | None:
    return next((c for c in checks if c.status == FAIL), None)
