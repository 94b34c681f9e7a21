"""dataplane.applier without root: when an apply is full or partial, what the
applier remembers, and verify mode's comparisons. The kernel calls of
dataplane.iptables are replaced by a recorder; tests/kernel/test_iptables.py
runs the real ones, in verify mode."""
from __future__ import annotations

import pytest

from dataplane import applier as applier_module
from dataplane import iptables
from dataplane.applier import Applier, changed_by_rewrite, held_differently, ours
from dataplane.model import Endpoint, NodeInfo, ServicePort
from dataplane.rules import render

NODE = NodeInfo(name="node-a", cluster_cidr="10.244.0.0/16")
WEB = ServicePort("default", "web", "", "TCP", "10.96.0.20", 80)


class Kernel:
    """Stands in for iptables-legacy-restore/-save: records restores, can fail."""

    def __init__(self, monkeypatch):
        self.restores: list[str] = []
        self.fail = False
        monkeypatch.setattr(iptables, "restore", self.restore)
        monkeypatch.setattr(iptables, "read_tables", lambda *a: {})
        monkeypatch.setattr(iptables, "tables_fingerprint", lambda *a: ((len(self.restores), 0),))

    def restore(self, text: str) -> None:
        if self.fail:
            raise iptables.IptablesRestoreError("rejected", 1, text.splitlines()[0], "")
        self.restores.append(text)


def test_first_apply_is_full_then_partial_and_full_again_after_a_failure(monkeypatch):
    kernel = Kernel(monkeypatch)
    a = Applier()
    first = render({WEB: []}, NODE)
    assert a.apply(first) > 0 and ":KUBE-PROXY-CANARY - [0:0]" in kernel.restores[-1]
    assert a.written is first
    second = render({WEB: [Endpoint("10.244.0.5", 80)]}, NODE)
    a.apply(second)
    assert "KUBE-PROXY-CANARY" not in kernel.restores[-1]  # partial: only the changed chains
    assert a.apply(render({WEB: [Endpoint("10.244.0.5", 80)]}, NODE)) == 0 and len(kernel.restores) == 2
    kernel.fail = True
    with pytest.raises(iptables.IptablesRestoreError):
        a.apply(render({WEB: []}, NODE))
    assert a.written is None  # what the kernel holds is unknown now
    kernel.fail = False
    a.apply(second)
    assert ":KUBE-PROXY-CANARY - [0:0]" in kernel.restores[-1]
    a.apply(second, full=True)
    assert ":KUBE-PROXY-CANARY - [0:0]" in kernel.restores[-1]


def test_canary_is_read_back_only_after_someone_else_wrote(monkeypatch):
    kernel = Kernel(monkeypatch)
    reads = []
    monkeypatch.setattr(iptables, "canaries_present", lambda: reads.append(1) or True)
    a = Applier()
    a.apply(render({WEB: []}, NODE))
    assert not a.canary_missing() and reads == []
    kernel.restores.append("someone else's")  # the fingerprint changes
    assert not a.canary_missing() and reads == [1]
    assert not a.canary_missing() and reads == [1]  # remembered: quiet until the next change


def test_verify_mode_must_be_known():
    with pytest.raises(ValueError, match="verify must be one of off, log, raise"):
        Applier(verify="yes")


def saved_as_written(ruleset) -> dict[str, dict[str, list[str]]]:
    saved = {table: {chain: list(rules) for chain, rules in chains.items()} for table, chains in ruleset.tables.items()}
    for jump in iptables.JUMPS:
        saved[jump.table].setdefault(jump.chain, []).append(f"-A {jump.chain} {jump.spec}")
    for table in iptables.CANARY_TABLES:
        saved.setdefault(table, {})[iptables.CANARY] = []
    return saved


def test_held_differently_names_each_kind_of_difference():
    ruleset = render({WEB: [Endpoint("10.244.0.5", 80)]}, NODE)
    saved = saved_as_written(ruleset)
    assert held_differently(ruleset, saved) == []
    svc = next(c for c in saved["nat"] if c.startswith("KUBE-SVC-"))
    saved["nat"][svc].pop()
    saved["nat"]["KUBE-SEP-STALE"] = []
    del saved["filter"]["KUBE-FORWARD"]
    saved["nat"]["OUTPUT"] *= 2
    del saved["mangle"][iptables.CANARY]
    assert held_differently(ruleset, saved) == [
        "filter KUBE-FORWARD: written, but not in the kernel",
        f"nat {svc}: 2 rules written, the kernel holds 1",
        "nat KUBE-SEP-STALE: a stale service chain",
        "nat OUTPUT: the jump to KUBE-SERVICES is there 2 times, not once",
        "mangle: no KUBE-PROXY-CANARY chain",
    ]


def test_changed_by_rewrite_diffs_our_chains_only():
    before = {"nat": {"KUBE-SERVICES": ["-A KUBE-SERVICES -j A"], "OTHER": ["-A OTHER -j X"],
                      "PREROUTING": ["-A PREROUTING -j OTHER",
                                     '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'],
                      "KUBE-SEP-GONE": []}}
    after = {"nat": {"KUBE-SERVICES": ["-A KUBE-SERVICES -j B"], "OTHER": ["-A OTHER -j Y"],
                     "PREROUTING": ['-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES']}}
    assert ours(after) == {("nat", "KUBE-SERVICES"): ("-A KUBE-SERVICES -j B",),
                           ("nat", "PREROUTING"): (after["nat"]["PREROUTING"][0],)}
    problems = changed_by_rewrite(ours(before), ours(after))
    assert problems[0] == "nat KUBE-SEP-GONE: only before a full rewrite"
    assert problems[1].splitlines() == ["--- nat KUBE-SERVICES after the apply",
                                        "+++ nat KUBE-SERVICES written again in full",
                                        "@@ -1 +1 @@", "--A KUBE-SERVICES -j A", "+-A KUBE-SERVICES -j B"]
    assert len(problems) == 2  # others' chains and rules are not ours to compare


def test_verify_raises_or_logs(monkeypatch, caplog):
    kernel = Kernel(monkeypatch)
    ruleset = render({WEB: []}, NODE)
    saved = saved_as_written(ruleset)
    monkeypatch.setattr(iptables, "save", lambda tables: "")
    monkeypatch.setattr(iptables, "parse_rules", lambda text: saved)
    Applier(verify="raise").apply(ruleset)  # the kernel holds it: nothing to say
    assert len(kernel.restores) == 2  # the apply, then the full second write
    del saved["filter"]["KUBE-FORWARD"]
    with pytest.raises(applier_module.IptablesVerifyError) as err:
        Applier(verify="raise").apply(ruleset)
    assert err.value.problems == ["filter KUBE-FORWARD: written, but not in the kernel"]
    logged = Applier(verify="log")
    logged.apply(ruleset)
    assert logged.written is ruleset
    assert "filter KUBE-FORWARD: written, but not in the kernel" in caplog.text
