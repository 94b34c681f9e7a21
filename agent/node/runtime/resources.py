"""Resource quantities, QoS classes and what the kubelet derives from them.

Pure functions reproducing the kubelet's arithmetic (pkg/kubelet/cm and
kuberuntime) so a container here gets the same cgroup numbers as on a real
node: `limits.memory` -> memory limit (and swap = limit where swap is
accounted, as containerd sets it), `limits.cpu` -> CFS quota over a 100000 us
period, `requests.cpu` (defaulting to the limit) -> cpu shares clamped to
[2, 262144], and the QoS class -> oom_score_adj (Guaranteed -997,
BestEffort 1000, Burstable 1000 - 1000*request/capacity kept within
[3, 999]).

On cgroup v2 the runtime writes memory.max and cpu.max from the same OCI
fields (limit; quota and period); cpu.weight is set explicitly from the
shares by the kubelet's own conversion (1 + (shares-2)*9999/262142, so 2 ->
1, 1024 -> 39, 262144 -> 10000) rather than left to each runtime's, which
differ between crun versions; memory.oom.group=1 makes an OOM kill take the
whole container as the kubelet asks.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from .errors import ContainerConfigError

QUOTA_PERIOD = 100_000
MIN_QUOTA_PERIOD = 1_000
MIN_SHARES = 2
MAX_SHARES = 262_144
SHARES_PER_CPU = 1024
GUARANTEED_OOM_SCORE_ADJ = -997
BESTEFFORT_OOM_SCORE_ADJ = 1000
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000
QOS_RESOURCES = ("cpu", "memory")

_SUFFIX = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
}
_QUANTITY_RE = re.compile(r"^([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))"
                          r"(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$")


def parse_quantity(value) -> Decimal:
    """A Kubernetes quantity ("128Mi", "500m", "1.5", "1e3", 2) as a Decimal."""
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    match = _QUANTITY_RE.match(str(value).strip())
    if not match:
        raise ContainerConfigError(f"quantity {value!r} is not valid: use e.g. 128Mi, 1Gi, "
                                   "500m or 2")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        amount = Decimal(number)
    except InvalidOperation as err:  # pragma: no cover - the regex rules it out
        raise ContainerConfigError(f"quantity {value!r} is not valid") from err
    if suffix[:1] in ("e", "E"):
        return amount * (Decimal(10) ** int(suffix[1:]))
    return amount * _SUFFIX[suffix]


def value(quantity) -> int:
    """Quantity.Value(): whole units, rounded up (memory in bytes)."""
    return int(parse_quantity(quantity).to_integral_value(rounding=ROUND_CEILING))


def milli_value(quantity) -> int:
    """Quantity.MilliValue(): thousandths, rounded up (cpu in millicores)."""
    return int((parse_quantity(quantity) * 1000).to_integral_value(rounding=ROUND_CEILING))


def _resources(container: dict) -> tuple[dict, dict]:
    res = container.get("resources") or {}
    limits = dict(res.get("limits") or {})
    requests = dict(res.get("requests") or {})
    for name, limit in limits.items():      # API defaulting: request = limit
        requests.setdefault(name, limit)
    return requests, limits


def qos_class(pod: dict) -> str:
    """Guaranteed, Burstable or BestEffort, as GetPodQOS decides."""
    spec = pod.get("spec") or {}
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        req, lim = _resources(container)
        for name in QOS_RESOURCES:
            if name in req and parse_quantity(req[name]) > 0:
                requests[name] = requests.get(name, Decimal(0)) + parse_quantity(req[name])
        found = set()
        for name in QOS_RESOURCES:
            if name in lim and parse_quantity(lim[name]) > 0:
                found.add(name)
                limits[name] = limits.get(name, Decimal(0)) + parse_quantity(lim[name])
        if found != set(QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(n) == q for n, q in requests.items()) \
            and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def _node_critical(pod: dict) -> bool:
    spec = pod.get("spec") or {}
    return (spec.get("priorityClassName") == "system-node-critical"
            and int(spec.get("priority") or 0) >= SYSTEM_CRITICAL_PRIORITY)


def oom_score_adj(pod: dict, container: dict, memory_capacity: int) -> int:
    """The kubelet's GetContainerOOMScoreAdjust."""
    if _node_critical(pod):
        return GUARANTEED_OOM_SCORE_ADJ
    qos = qos_class(pod)
    if qos == "Guaranteed":
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == "BestEffort":
        return BESTEFFORT_OOM_SCORE_ADJ
    requests, _ = _resources(container)
    request = value(requests["memory"]) if "memory" in requests else 0
    if memory_capacity <= 0:
        return BESTEFFORT_OOM_SCORE_ADJ - 1
    adjust = 1000 - (1000 * request) // memory_capacity
    if adjust < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if adjust == BESTEFFORT_OOM_SCORE_ADJ:
        return adjust - 1
    return adjust


def milli_cpu_to_shares(milli_cpu: int) -> int:
    """cm.MilliCPUToShares."""
    if milli_cpu == 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli_cpu * SHARES_PER_CPU // 1000))


def milli_cpu_to_quota(milli_cpu: int, period: int = QUOTA_PERIOD) -> int:
    """cm.MilliCPUToQuota: 0 (no limit) or at least 1000 us."""
    if milli_cpu == 0:
        return 0
    return max(MIN_QUOTA_PERIOD, milli_cpu * period // 1000)


MIN_WEIGHT = 1
MAX_WEIGHT = 10_000


def cpu_shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares -> v2 cpu.weight, the kubelet's (and runc's)
    conversion: [2, 262144] maps linearly onto [1, 10000]."""
    shares = max(MIN_SHARES, min(MAX_SHARES, shares))
    return MIN_WEIGHT + ((shares - MIN_SHARES) * (MAX_WEIGHT - MIN_WEIGHT)) // (MAX_SHARES - MIN_SHARES)


def linux_resources(container: dict, *, swap_accounting: bool = False,
                    cgroup_v2: bool = False) -> dict:
    """The OCI linux.resources section for a container (devices excluded)."""
    res = container.get("resources") or {}
    limits = res.get("limits") or {}
    requests = res.get("requests") or {}
    cpu_request = milli_value(requests["cpu"]) if "cpu" in requests else 0
    cpu_limit = milli_value(limits["cpu"]) if "cpu" in limits else 0
    shares = milli_cpu_to_shares(cpu_limit if cpu_request == 0 and cpu_limit else cpu_request)
    cpu = {"shares": shares, "period": QUOTA_PERIOD}
    quota = milli_cpu_to_quota(cpu_limit)
    if quota:
        cpu["quota"] = quota
    out: dict = {"cpu": cpu}
    memory = value(limits["memory"]) if "memory" in limits else 0
    if memory:
        out["memory"] = {"limit": memory}
        if swap_accounting:
            out["memory"]["swap"] = memory
    if cgroup_v2:
        out["unified"] = {"memory.oom.group": "1", "cpu.weight": str(cpu_shares_to_weight(shares))}
    return out


EVICTION_HARD_MEMORY = 100 * 2**20    # the kubelet's default evictionHard: memory.available<100Mi


def node_resources(cpus: int, memory_capacity: int) -> tuple[dict, dict]:
    """The Node's (capacity, allocatable) as a kubelet with its defaults
    reports them: no kube/system reservations, allocatable memory less the
    100Mi hard-eviction threshold. The downward API gives a container
    without a limit the allocatable value."""
    capacity = {"cpu": str(cpus), "pods": "110"}
    allocatable = dict(capacity)
    if memory_capacity:
        capacity["memory"] = f"{memory_capacity // 1024}Ki"
        allocatable["memory"] = f"{max(memory_capacity - EVICTION_HARD_MEMORY, 0) // 1024}Ki"
    return capacity, allocatable
