"""kubectl's output formats, computed from plain objects.

Owns: the columns and cells of kube-apiserver's Table printers for the kinds we
serve (a port of pkg/printers/internalversion/printers.go: printService,
printEndpoints, printEndpointSlice, printPod, printDeployment, printReplicaSet,
printReplicationController, printNamespace, printNode, printEvent, printConfigMap, printSecret,
printServiceAccount, printCertificateSigningRequest), kubectl's tabwriter layout (column
width = widest cell + 3 spaces, minimum 6; the last column unpadded),
HumanDuration for AGE (k8s.io/apimachinery/pkg/util/duration), and `-o yaml` /
`-o json` rendering as kubectl does it (keys sorted; one object, or a `List`).

`rows(kind, obj, wide=...)` gives the cells the API server puts in a
server-side Table; `table(...)` renders the text `kubectl get` prints.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import yaml

from agent.api import ingressprinters, kinds, storageprinters, workloadprinters
from agent.api.durations import human_duration, parse_time, since  # noqa: F401 - re-exported
from agent.api.selectors import from_label_selector

_COLUMNS = {
    "Service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], ["SELECTOR"]),
    "Endpoints": (["NAME", "ENDPOINTS", "AGE"], []),
    "EndpointSlice": (["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], []),
    "Pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]),
    "Deployment": (["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"]),
    "ReplicaSet": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"]),
    "ReplicationController": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"]),
    "Namespace": (["NAME", "STATUS", "AGE"], []),
    "Node": (["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
             ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]),
    "Event": (["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], []),
    "CertificateSigningRequest": (["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"], []),
}
_EVENT_WIDE = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT", "NAME"]


def columns(kind: str, *, wide: bool = False) -> list[str]:
    """Column headers as kubectl prints them (Table column names upper-cased)."""
    if kind == "Event" and wide:
        return list(_EVENT_WIDE)
    base, extra = _COLUMNS[kind]
    return base + (extra if wide else [])


# ---- time: agent/api/durations.py (HumanDuration, translateTimestampSince) ----------------

def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


# ---- per-kind cells -------------------------------------------------------------------

def format_labels(labels: dict | None) -> str:
    """labels.FormatLabels: sorted k=v joined by ',', or <none>."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _more(items: list[str], total: int, maximum: int = 3, empty: str = "<unset>") -> str:
    ret = ",".join(items[:maximum])
    if total > maximum:
        return f"{ret} + {total - maximum} more..."
    return ret or empty


def _lb_ingress(svc: dict, wide: bool) -> str:
    ingress = (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    found = sorted({i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")})
    r = ",".join(found)
    return r[:13] + "..." if not wide and len(r) > 16 else r


def service_external_ip(svc: dict, wide: bool = False) -> str:
    spec = svc.get("spec") or {}
    stype = spec.get("type", "ClusterIP")
    ext = spec.get("externalIPs") or []
    if stype in ("ClusterIP", "NodePort"):
        return ",".join(ext) if ext else "<none>"
    if stype == "LoadBalancer":
        lb = _lb_ingress(svc, wide)
        if ext:
            return ",".join((lb.split(",") if lb else []) + ext)
        return lb or "<pending>"
    if stype == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def service_ports(svc: dict) -> str:
    pieces = []
    for p in (svc.get("spec") or {}).get("ports") or []:
        proto = p.get("protocol", "TCP")
        pieces.append(f"{p.get('port')}:{p['nodePort']}/{proto}" if p.get("nodePort") else f"{p.get('port')}/{proto}")
    return ",".join(pieces) or "<none>"


def _service(svc, wide, now):
    spec = svc.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    row = [_name(svc), spec.get("type", "ClusterIP"), ips[0] if ips else "<none>",
           service_external_ip(svc, wide), service_ports(svc), since(_created(svc), now)]
    return row + ([format_labels(spec.get("selector"))] if wide else [])


def format_endpoints(ep: dict) -> str:
    subsets = ep.get("subsets") or []
    if not subsets:
        return "<none>"
    items, count = [], 0
    for ss in subsets:
        addrs = [a.get("ip", "") for a in ss.get("addresses") or []]
        ports = ss.get("ports") or []
        for port in ports or [None]:
            count += len(addrs)
            for ip in addrs:
                if len(items) < 3:
                    host = f"[{ip}]" if ":" in ip else ip
                    items.append(ip if port is None else f"{host}:{port.get('port')}")
    return _more(items, count, empty="")


def _endpoints(ep, wide, now):
    return [_name(ep), format_endpoints(ep), since(_created(ep), now)]


def _endpoint_slice(sl, wide, now):
    ports = []
    for p in sl.get("ports") or []:
        ports.append(str(p["port"]) if p.get("port") is not None else (p.get("name") or "*"))
    addrs = [a for e in sl.get("endpoints") or [] for a in e.get("addresses") or []]
    return [_name(sl), sl.get("addressType", ""), _more(ports, len(ports)), _more(addrs, len(addrs)),
            since(_created(sl), now)]


def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def _created(obj: dict):
    return (obj.get("metadata") or {}).get("creationTimestamp")


# ---- Pod ---------------------------------------------------------------------------------

def pod_status(pod: dict) -> tuple[str, int, int, str | None]:
    """(STATUS reason, ready containers, restarts, last restart time) as printPod."""
    spec, st = pod.get("spec") or {}, pod.get("status") or {}
    phase = st.get("phase", "")
    reason = st.get("reason") or phase
    for cond in st.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    restarts, ready, last = 0, 0, None
    init_specs = spec.get("initContainers") or []
    initializing = False
    for i, c in enumerate(st.get("initContainerStatuses") or []):
        restarts += c.get("restartCount", 0)
        last = _later(last, _finished(c))
        state = c.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode", 0) == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or (f"Signal:{term['signal']}" if term.get("signal")
                                                        else f"ExitCode:{term.get('exitCode', 0)}"))
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True" for c in st.get("conditions") or [])
    if not initializing or initialized:
        restarts, last, has_running = 0, None, False
        for c in reversed(st.get("containerStatuses") or []):
            restarts += c.get("restartCount", 0)
            last = _later(last, _finished(c))
            state = c.get("state") or {}
            wait, term = state.get("waiting") or {}, state.get("terminated")
            if wait.get("reason"):
                reason = wait["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode', 0)}"
            elif c.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
            reason = "Running" if pod_ready else "NotReady"
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        if st.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return reason, ready, restarts, last


def _finished(status: dict) -> str | None:
    return ((status.get("lastState") or {}).get("terminated") or {}).get("finishedAt")


def _later(a: str | None, b: str | None) -> str | None:
    ta, tb = parse_time(a), parse_time(b)
    if tb is None:
        return a
    return b if ta is None or tb > ta else a


def _pod(pod, wide, now):
    spec, st = pod.get("spec") or {}, pod.get("status") or {}
    reason, ready, restarts, last = pod_status(pod)
    restarts_s = f"{restarts} ({since(last, now)} ago)" if restarts and last else str(restarts)
    total = len(spec.get("containers") or []) + sum(
        1 for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always")
    row = [_name(pod), f"{ready}/{total}", reason, restarts_s, since(_created(pod), now)]
    if not wide:
        return row
    ips = st.get("podIPs") or []
    ip = ips[0].get("ip") if ips else st.get("podIP")
    gates = spec.get("readinessGates") or []
    gates_s = "<none>"
    if gates:
        conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
        gates_s = f"{sum(1 for g in gates if conds.get(g.get('conditionType')) == 'True')}/{len(gates)}"
    return row + [ip or "<none>", spec.get("nodeName") or "<none>", st.get("nominatedNodeName") or "<none>", gates_s]


# ---- workloads, namespaces, nodes, events ---------------------------------------------

def _containers(obj) -> list[str]:
    ctrs = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return [",".join(c.get("name", "") for c in ctrs), ",".join(c.get("image", "") for c in ctrs)]


def label_selector_string(sel: dict | None) -> str:
    try:
        return str(from_label_selector(sel))
    except ValueError:
        return "<invalid>"


def _deployment(d, wide, now):
    spec, st = d.get("spec") or {}, d.get("status") or {}
    row = [_name(d), f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", str(st.get("updatedReplicas", 0)),
           str(st.get("availableReplicas", 0)), since(_created(d), now)]
    return row + (_containers(d) + [label_selector_string(spec.get("selector"))] if wide else [])


def _replica_set(rs, wide, now):
    spec, st = rs.get("spec") or {}, rs.get("status") or {}
    row = [_name(rs), str(spec.get("replicas", 1)), str(st.get("replicas", 0)), str(st.get("readyReplicas", 0)),
           since(_created(rs), now)]
    if not wide:
        return row
    sel = spec.get("selector")
    if rs.get("kind") == "ReplicationController":      # a plain label map, printed as labels are
        return row + _containers(rs) + [format_labels(sel)]
    return row + _containers(rs) + [label_selector_string(sel) or "<none>"]


def _namespace(ns, wide, now):
    return [_name(ns), (ns.get("status") or {}).get("phase", ""), since(_created(ns), now)]


def _node(node, wide, now):
    md, spec, st = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    status = []
    for c in st.get("conditions") or []:
        if c.get("type") == "Ready":
            status = ["Ready" if c.get("status") == "True" else "NotReady"]
    status = status or ["Unknown"]
    if spec.get("unschedulable"):
        status.append("SchedulingDisabled")
    roles = set()
    for k, v in (md.get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/") and k[len("node-role.kubernetes.io/"):]:
            roles.add(k[len("node-role.kubernetes.io/"):])
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    info = st.get("nodeInfo") or {}
    row = [_name(node), ",".join(status), ",".join(sorted(roles)) or "<none>", since(_created(node), now),
           info.get("kubeletVersion", "")]
    if not wide:
        return row
    addrs = st.get("addresses") or []

    def addr(t):
        return next((a.get("address") for a in addrs if a.get("type") == t), "<none>")
    return row + [addr("InternalIP"), addr("ExternalIP"), info.get("osImage") or "<unknown>",
                  info.get("kernelVersion") or "<unknown>", info.get("containerRuntimeVersion") or "<unknown>"]


def _event(ev, wide, now):
    first = since(ev.get("firstTimestamp"), now) if ev.get("firstTimestamp") else since(ev.get("eventTime"), now)
    last = since(ev.get("lastTimestamp"), now) if ev.get("lastTimestamp") else first
    count = ev.get("count") or 1
    if ev.get("series"):
        last = since(ev["series"].get("lastObservedTime"), now)
        count = ev["series"].get("count", count)
    inv = ev.get("involvedObject") or {}
    target = inv.get("kind", "").lower() + (f"/{inv['name']}" if inv.get("name") else "")
    msg = (ev.get("message") or "").strip()
    if not wide:
        return [last, ev.get("type", ""), ev.get("reason", ""), target, msg]
    src = ev.get("source") or {}
    component = src.get("component") or ev.get("reportingComponent") or ev.get("reportingController", "")
    host = src.get("host") or ev.get("reportingInstance", "")
    source = f"{component}, {host}" if host else component
    return [last, ev.get("type", ""), ev.get("reason", ""), target, inv.get("fieldPath", ""), source, msg,
            first, str(count), _name(ev)]


def csr_condition(csr: dict) -> str:
    """extractCSRStatus: Denied over Approved over Pending, then ,Failed and ,Issued."""
    types = {c.get("type") for c in (csr.get("status") or {}).get("conditions") or []}
    out = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    if "Failed" in types:
        out += ",Failed"
    if (csr.get("status") or {}).get("certificate"):
        out += ",Issued"
    return out


def _csr(csr, wide, now):
    spec = csr.get("spec") or {}
    exp = spec.get("expirationSeconds")
    return [_name(csr), since(_created(csr), now), spec.get("signerName") or "<none>", spec.get("username", ""),
            human_duration(exp) if isinstance(exp, int) else "<none>", csr_condition(csr)]


_ROWS = {"Service": _service, "Endpoints": _endpoints, "EndpointSlice": _endpoint_slice, "Pod": _pod,
         "Deployment": _deployment, "ReplicaSet": _replica_set, "ReplicationController": _replica_set,
         "Namespace": _namespace, "Node": _node,
         "Event": _event, "CertificateSigningRequest": _csr}


# ---- configuration and identity: ConfigMap, Secret, ServiceAccount ---------------------------

def _count(obj: dict, *fields: str) -> str:
    return str(sum(len(obj.get(f) or {}) for f in fields))


_COLUMNS.update({"ConfigMap": (["NAME", "DATA", "AGE"], []),
                 "Secret": (["NAME", "TYPE", "DATA", "AGE"], []),
                 "ServiceAccount": (["NAME", "SECRETS", "AGE"], [])})
_ROWS.update({
    "ConfigMap": lambda cm, wide, now: [_name(cm), _count(cm, "data", "binaryData"), since(_created(cm), now)],
    "Secret": lambda s, wide, now: [_name(s), s.get("type", ""), _count(s, "data"), since(_created(s), now)],
    "ServiceAccount": lambda sa, wide, now: [_name(sa), _count(sa, "secrets"), since(_created(sa), now)],
})


# ---- rbac.authorization.k8s.io (printRole, printClusterRole, printRoleBinding, printClusterRoleBinding) ----

def _created_at(obj: dict) -> str:
    """CreationTimestamp.UTC().Format(time.RFC3339)."""
    t = parse_time(_created(obj))
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "<unknown>"


def _subjects(binding: dict) -> tuple[str, str, str]:
    """SubjectsStrings: users, groups and ServiceAccounts (namespace/name), comma-joined."""
    out: dict[str, list[str]] = {"User": [], "Group": [], "ServiceAccount": []}
    for s in binding.get("subjects") or []:
        if isinstance(s, dict) and s.get("kind") in out:
            name = f'{s.get("namespace", "")}/{s.get("name", "")}' if s["kind"] == "ServiceAccount" else s.get("name", "")
            out[s["kind"]].append(name)
    return ", ".join(out["User"]), ", ".join(out["Group"]), ", ".join(out["ServiceAccount"])


def _binding(b, wide, now):
    ref = b.get("roleRef") or {}
    cells = [_name(b), f'{ref.get("kind", "")}/{ref.get("name", "")}', since(_created(b), now)]
    return cells + list(_subjects(b)) if wide else cells


_COLUMNS.update({k: (["NAME", "CREATED AT"], []) for k in ("Role", "ClusterRole")})
_COLUMNS.update({k: (["NAME", "ROLE", "AGE"], ["USERS", "GROUPS", "SERVICEACCOUNTS"])
                 for k in ("RoleBinding", "ClusterRoleBinding")})
_ROWS.update({"Role": lambda r, wide, now: [_name(r), _created_at(r)],
              "ClusterRole": lambda r, wide, now: [_name(r), _created_at(r)],
              "RoleBinding": _binding, "ClusterRoleBinding": _binding})


def row(kind: str, obj: dict, *, wide: bool = False, now: datetime | None = None) -> list[str]:
    """One object's cells, as kube-apiserver's Table row."""
    return _ROWS[kind](obj, wide, _now(now))


# ---- text layout ---------------------------------------------------------------------------

def tabulate(lines: list[list[str]]) -> str:
    """Go's tabwriter as kubectl configures it (minwidth 6, padding 3)."""
    if not lines:
        return ""
    ncols = max(len(line) for line in lines)
    widths = [0] * ncols
    for line in lines:
        for i, cell in enumerate(line[:-1]):
            widths[i] = max(widths[i], len(cell) + 3, 6)
    out = []
    for line in lines:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])] + line[-1:]
        out.append("".join(cells))
    return "\n".join(out) + "\n"


def table(kind: str, objs: list[dict], *, wide: bool = False, all_namespaces: bool = False,
          show_labels: bool = False, with_kind: bool = False, no_headers: bool = False,
          now: datetime | None = None) -> str:
    """What `kubectl get` prints for these objects (in the order given).
    `with_kind` prefixes names with `kind[.group]/` as kubectl does when
    several resource types are listed."""
    now = _now(now)
    k = kinds.BY_KIND.get(kind)
    head = columns(kind, wide=wide)
    name_col = head.index("NAME") if "NAME" in head else None
    lines = [] if no_headers else [(["NAMESPACE"] if all_namespaces else []) + head + (["LABELS"] if show_labels else [])]
    for obj in objs:
        cells = row(kind, obj, wide=wide, now=now)
        if with_kind and name_col is not None and k:
            cells[name_col] = f"{k.singular}{'.' + k.group if k.group else ''}/{cells[name_col]}"
        md = obj.get("metadata") or {}
        lines.append(([md.get("namespace", "")] if all_namespaces else []) + cells
                     + ([format_labels(md.get("labels"))] if show_labels else []))
    return tabulate(lines)


def no_resources_message(namespace: str | None = "default", *, all_namespaces: bool = False,
                         namespaced: bool = True) -> str:
    """What kubectl prints on stderr when a list is empty."""
    if all_namespaces or not namespaced or not namespace:
        return "No resources found"
    return f"No resources found in {namespace} namespace."


# ---- -o yaml / -o json ------------------------------------------------------------------------

def list_wrapper(objs: list[dict]) -> dict:
    return {"apiVersion": "v1", "items": list(objs), "kind": "List", "metadata": {"resourceVersion": ""}}


class _Dumper(yaml.SafeDumper):
    """go-yaml v2 style: strings that would read back as another type are
    double-quoted, multi-line strings are literal blocks."""


def _repr_str(dumper: _Dumper, value: str):
    style = None
    if "\n" in value:
        style = "|"
    elif dumper.resolve(yaml.ScalarNode, value, (True, False)) != "tag:yaml.org,2002:str":
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _repr_str)


def to_yaml(obj) -> str:
    """`-o yaml`: a list of objects is wrapped in a List, keys sorted."""
    if isinstance(obj, list):
        obj = list_wrapper(obj)
    return yaml.dump(obj, Dumper=_Dumper, default_flow_style=False, sort_keys=True, allow_unicode=True, width=80)


def to_json(obj) -> str:
    """`-o json`: 4-space indent, sorted keys, Go's HTML-safe escaping."""
    if isinstance(obj, list):
        obj = list_wrapper(obj)
    text = json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text + "\n"


# ---- StatefulSet, ControllerRevision, DaemonSet, Job, CronJob: agent/api/workloadprinters.py
_COLUMNS.update(workloadprinters.COLUMNS)
_ROWS.update(workloadprinters.ROWS)
# ---- Ingress, IngressClass: agent/api/ingressprinters.py
_COLUMNS.update(ingressprinters.COLUMNS)
_ROWS.update(ingressprinters.ROWS)
# ---- PersistentVolumeClaim: agent/api/storageprinters.py
_COLUMNS.update(storageprinters.COLUMNS)
_ROWS.update(storageprinters.ROWS)
