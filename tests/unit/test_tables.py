"""Server-side Tables: the columns kubectl prints for `get`, and pagination."""
from datetime import UTC, datetime, timedelta

import pytest

from agent.api import printers
from agent.apiserver import paging, tables

NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
KUBECTL_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
                  "g=meta.k8s.io,application/json")


def ago(s):
    return (NOW - timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def svc(name, ns="default", selector=None):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": ago(10), "resourceVersion": "7",
                         "labels": {"app": name}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                     "ports": [{"port": 80, "protocol": "TCP"}], "selector": selector}}


def test_accept_negotiation():
    assert tables.wants_table(KUBECTL_ACCEPT) == "v1"
    assert tables.wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io") == "v1beta1"
    assert tables.wants_table("application/json") is None
    assert tables.wants_table(None) is None
    assert tables.wants_table("application/json;as=Table;v=v9;g=meta.k8s.io,application/json") is None


def test_service_table_matches_kube_columns():
    t = tables.table("Service", [svc("web", selector={"app": "web"})], resource_version="9", now=NOW)
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "9"}
    cols = t["columnDefinitions"]
    assert [c["name"] for c in cols] == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]
    assert [c["priority"] for c in cols] == [0, 0, 0, 0, 0, 0, 1]
    assert cols[0]["format"] == "name" and all(c["type"] == "string" for c in cols)
    row = t["rows"][0]
    assert row["cells"] == ["web", "ClusterIP", "10.96.0.20", "<none>", "80/TCP", "10s", "app=web"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["apiVersion"] == "meta.k8s.io/v1"
    assert row["object"]["metadata"]["labels"] == {"app": "web"}


@pytest.mark.parametrize("kind", sorted(tables.COLUMNS))
def test_columns_agree_with_nsplane_printers(kind):
    """kubectl upper-cases the Table's column names; `nsplane get -o wide`
    prints printers.columns(wide=True): both must say the same."""
    names = [c["name"].upper() for c in tables.column_definitions(kind)]
    assert names == printers.columns(kind, wide=True)
    narrow = [c["name"].upper() for c in tables.column_definitions(kind) if c["priority"] == 0]
    assert narrow == printers.columns(kind)


def test_integer_cells_and_include_object():
    rs = {"metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": ago(5)},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
          "status": {"replicas": 3, "readyReplicas": 2}}
    t = tables.table("ReplicaSet", [rs], include="Object", now=NOW)
    assert t["rows"][0]["cells"][:5] == ["web-1", 3, 3, 2, "5s"]
    assert t["rows"][0]["object"] is rs
    assert "object" not in tables.table("ReplicaSet", [rs], include="None", now=NOW)["rows"][0]
    v1beta1 = tables.table("ReplicaSet", [rs], version="v1beta1", now=NOW)
    assert v1beta1["apiVersion"] == "meta.k8s.io/v1beta1"
    assert v1beta1["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"
    with pytest.raises(ValueError):
        tables.table("ReplicaSet", [rs], include="Everything")


def test_pod_rows_wide_and_conditions():
    pod = {"metadata": {"name": "p", "namespace": "default", "creationTimestamp": ago(60)},
           "spec": {"nodeName": "node-1", "containers": [{"name": "c"}]},
           "status": {"phase": "Succeeded", "podIP": "10.244.1.5",
                      "containerStatuses": [{"ready": False, "restartCount": 0,
                                             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}
    row = tables.table("Pod", [pod], now=NOW)["rows"][0]
    assert row["cells"] == ["p", "0/1", "Completed", "0", "60s", "10.244.1.5", "node-1", "<none>", "<none>"]
    assert row["conditions"][0]["type"] == "Completed"


def test_event_columns_order():
    ev = {"metadata": {"name": "web.17", "namespace": "default"}, "type": "Normal", "reason": "Scheduled",
          "involvedObject": {"kind": "Pod", "name": "web-1"}, "message": "Successfully assigned",
          "source": {"component": "default-scheduler"}, "firstTimestamp": ago(30), "lastTimestamp": ago(20),
          "count": 2}
    cells = tables.table("Event", [ev], now=NOW)["rows"][0]["cells"]
    assert cells == ["20s", "Normal", "Scheduled", "pod/web-1", "", "default-scheduler", "Successfully assigned",
                     "30s", "2", "web.17"]


def test_pagination_walks_every_item_once():
    items = [svc(f"s{i:02d}") for i in range(7)]
    seen, token, pages = [], None, 0
    while True:
        page, md = paging.page(items, 42, "3", token)
        seen += [o["metadata"]["name"] for o in page]
        assert md["resourceVersion"] == "42"
        pages += 1
        token = md.get("continue")
        if not token:
            break
        assert md["remainingItemCount"] == 7 - len(seen)
    assert seen == [f"s{i:02d}" for i in range(7)] and pages == 3
    page, md = paging.page(items, 42, None, None)
    assert len(page) == 7 and "continue" not in md


def test_bad_continue_token():
    with pytest.raises(paging.BadContinue, match="continue key is not valid"):
        paging.page([], 1, "5", "not-a-token!")
