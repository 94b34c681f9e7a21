"""kube-controller-manager's clusterrole-aggregation controller
(pkg/controller/clusterroleaggregation): a ClusterRole with an
aggregationRule gets as its rules the union, in name order, of the rules of
every other ClusterRole one of its clusterRoleSelectors selects. So `admin`,
`edit` and `view` grow when a user adds a ClusterRole labelled
`rbac.authorization.k8s.io/aggregate-to-view: "true"`.

Any ClusterRole change re-queues every aggregating ClusterRole (there are
few); a sync writes only when the rules differ.
"""
from __future__ import annotations

import logging

from agent.api.kinds import BY_RESOURCE
from agent.api.selectors import from_label_selector
from agent.controllers.base import Controller

log = logging.getLogger("nsplane.controllers.clusterroleaggregation")
CLUSTER_ROLES = BY_RESOURCE["clusterroles"]


def aggregated_rules(role: dict, all_roles: list[dict]) -> list[dict]:
    """The rules `role`'s aggregationRule gathers (pure; duplicates dropped)."""
    selectors = [from_label_selector(s) for s in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
                 if isinstance(s, dict)]
    out: list[dict] = []
    for other in sorted(all_roles, key=lambda r: r["metadata"]["name"]):
        if other["metadata"]["name"] == role["metadata"]["name"]:
            continue
        labels = other["metadata"].get("labels") or {}
        if any(sel.matches(labels) for sel in selectors):
            for rule in other.get("rules") or []:
                if rule not in out:
                    out.append(rule)
    return out


def _aggregators(self, obj: dict) -> list:
    roles, _ = self.store.list("clusterroles", None, lambda r: bool(r.get("aggregationRule")), copy_items=False)
    return [r["metadata"]["name"] for r in roles]


class ClusterRoleAggregationController(Controller):
    name = "clusterrole-aggregation"
    watches = {"clusterroles": _aggregators}

    def sync(self, key) -> None:
        role = self.live("clusterroles", "", key)
        if role is None or not role.get("aggregationRule"):
            return
        all_roles, _ = self.store.list("clusterroles", None)
        rules = aggregated_rules(role, all_roles)
        if rules == (role.get("rules") or []):
            return
        self.registry.guaranteed_update(CLUSTER_ROLES, None, key, lambda cur: {**cur, "rules": rules})
        log.info("ClusterRole %s: %d rules aggregated", key, len(rules))
