"""kubectl output: columns, cells, tabwriter layout, AGE, -o yaml/json."""
from datetime import datetime, timedelta, timezone

import pytest

from agent.api import printers as P

NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def ago(seconds):
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name, age, ns="default", **extra):
    return {"name": name, "namespace": ns, "creationTimestamp": ago(age), **extra}


def service(name, age, stype="ClusterIP", ip="10.96.142.31", ports=None, **spec):
    s = {"type": stype, "ports": ports if ports is not None else [{"port": 80, "protocol": "TCP"}], **spec}
    if ip:
        s["clusterIP"], s["clusterIPs"] = ip, [ip]
    return {"metadata": meta(name, age), "spec": s}


@pytest.mark.parametrize("seconds, text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (10, "10s"), (119, "119s"), (120, "2m"), (150, "2m30s"),
    (300, "5m"), (599, "9m59s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"),
    (3 * 3600 + 4 * 60, "3h4m"), (8 * 3600, "8h"), (47 * 3600, "47h"), (2 * 86400, "2d"),
    (2 * 86400 + 5 * 3600, "2d5h"), (8 * 86400, "8d"), (400 * 86400, "400d"),
    (3 * 365 * 86400, "3y"), (3 * 365 * 86400 + 5 * 86400, "3y5d"), (9 * 365 * 86400, "9y"),
])
def test_human_duration(seconds, text):
    assert P.human_duration(seconds) == text


def test_seed_get_svc():
    svcs = [service("kubernetes", 2 * 86400, ip="10.96.0.1", ports=[{"port": 443, "protocol": "TCP"}]),
            service("web", 10, selector={"app": "web"})]
    assert P.table("Service", svcs, now=NOW) == (
        "NAME         TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)   AGE\n"
        "kubernetes   ClusterIP   10.96.0.1      <none>        443/TCP   2d\n"
        "web          ClusterIP   10.96.142.31   <none>        80/TCP    10s\n")


def test_seed_service_types():
    np = service("web", 300, "NodePort", ports=[{"port": 80, "nodePort": 30080, "protocol": "TCP"}])
    assert P.table("Service", [np], now=NOW).splitlines()[1] == "web    NodePort   10.96.142.31   <none>        80:30080/TCP   5m"
    lb = service("web", 20, "LoadBalancer", ports=[{"port": 80, "nodePort": 31523, "protocol": "TCP"}])
    assert P.row("Service", lb, now=NOW) == ["web", "LoadBalancer", "10.96.142.31", "<pending>", "80:31523/TCP", "20s"]
    lb["status"] = {"loadBalancer": {"ingress": [{"hostname": "a1b2c3d4.elb.amazonaws.com"}]}}
    assert P.row("Service", lb, now=NOW)[3] == "a1b2c3d4.elb...."
    assert P.row("Service", lb, wide=True, now=NOW)[3] == "a1b2c3d4.elb.amazonaws.com"
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "192.168.1.240"}]}}
    assert P.row("Service", lb, now=NOW)[3] == "192.168.1.240"


def test_service_cells():
    dns = service("kube-dns", 60, ip="10.96.0.10", ports=[
        {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        {"name": "metrics", "port": 9153, "protocol": "TCP"}])
    assert P.row("Service", dns, now=NOW)[4] == "53/UDP,53/TCP,9153/TCP"
    ext = {"metadata": meta("db", 60), "spec": {"type": "ExternalName", "externalName": "db.example.com"}}
    assert P.row("Service", ext, now=NOW)[1:5] == ["ExternalName", "<none>", "db.example.com", "<none>"]
    headless = service("h", 60, ip="None")
    assert P.row("Service", headless, now=NOW)[2] == "None"
    eips = service("e", 60, externalIPs=["192.168.1.10"])
    assert P.row("Service", eips, now=NOW)[3] == "192.168.1.10"
    assert P.row("Service", service("w", 60, selector={"tier": "fe", "app": "web"}), wide=True, now=NOW)[-1] == "app=web,tier=fe"
    assert P.row("Service", service("w", 60), wide=True, now=NOW)[-1] == "<none>"


def endpoints(ips, port=80, age=30):
    subsets = [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"port": port, "protocol": "TCP"}]}] if ips else []
    return {"metadata": meta("web", age), "subsets": subsets}


def test_seed_get_endpoints():
    assert P.table("Endpoints", [endpoints(["10.244.0.5", "10.244.0.6", "10.244.0.7"])], now=NOW) == (
        "NAME   ENDPOINTS                                   AGE\n"
        "web    10.244.0.5:80,10.244.0.6:80,10.244.0.7:80   30s\n")
    assert P.table("Endpoints", [endpoints([], age=100)], now=NOW) == (
        "NAME   ENDPOINTS   AGE\n"
        "web    <none>      100s\n")


def test_endpoints_truncation():
    ep = endpoints([f"10.244.0.{i}" for i in range(5, 10)])
    assert P.format_endpoints(ep) == "10.244.0.5:80,10.244.0.6:80,10.244.0.7:80 + 2 more..."


def test_seed_get_endpointslices():
    sl = {"metadata": meta("web-abc12", 30), "addressType": "IPv4", "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
          "endpoints": [{"addresses": [ip]} for ip in ("10.244.0.5", "10.244.0.6", "10.244.0.7")]}
    assert P.table("EndpointSlice", [sl], now=NOW) == (
        "NAME        ADDRESSTYPE   PORTS   ENDPOINTS                          AGE\n"
        "web-abc12   IPv4          80      10.244.0.5,10.244.0.6,10.244.0.7   30s\n")
    empty = {"metadata": meta("web-x", 30), "addressType": "IPv4", "ports": None, "endpoints": []}
    assert P.row("EndpointSlice", empty, now=NOW)[2:4] == ["<unset>", "<unset>"]
    many = {**sl, "endpoints": [{"addresses": [f"10.0.0.{i}"]} for i in range(1, 6)]}
    assert P.row("EndpointSlice", many, now=NOW)[3] == "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more..."


def pod(name="web-1", phase="Running", ready=True, state=None, restarts=0, last_finished=None, **md):
    status = {"phase": phase, "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
              "containerStatuses": [{"name": "web", "ready": ready, "restartCount": restarts,
                                     "state": state or {"running": {"startedAt": ago(60)}}}]}
    if last_finished:
        status["containerStatuses"][0]["lastState"] = {"terminated": {"finishedAt": ago(last_finished), "exitCode": 1}}
    return {"metadata": meta(name, 120, **md), "spec": {"nodeName": "node1", "containers": [{"name": "web", "image": "nginx"}]},
            "status": status}


@pytest.mark.parametrize("p, status, ready", [
    (pod(), "Running", "1/1"),
    (pod(phase="Pending", ready=False, state={"waiting": {"reason": "ContainerCreating"}}), "ContainerCreating", "0/1"),
    (pod(phase="Pending", ready=False, state={}), "Pending", "0/1"),
    (pod(phase="Running", ready=False, state={"waiting": {"reason": "CrashLoopBackOff"}}), "CrashLoopBackOff", "0/1"),
    (pod(phase="Succeeded", ready=False, state={"terminated": {"reason": "Completed", "exitCode": 0}}), "Completed", "0/1"),
    (pod(phase="Failed", ready=False, state={"terminated": {"reason": "Error", "exitCode": 1}}), "Error", "0/1"),
    (pod(phase="Failed", ready=False, state={"terminated": {"exitCode": 137, "signal": 9}}), "Signal:9", "0/1"),
    (pod(deletionTimestamp=ago(1)), "Terminating", "1/1"),
])
def test_pod_status(p, status, ready):
    cells = P.row("Pod", p, now=NOW)
    assert (cells[2], cells[1]) == (status, ready)


def test_pod_restarts_and_wide():
    p = pod(restarts=2, last_finished=90)
    assert P.row("Pod", p, now=NOW)[3] == "2 (90s ago)"
    assert P.table("Pod", [pod()], wide=True, now=NOW) == (
        "NAME    READY   STATUS    RESTARTS   AGE   IP           NODE    NOMINATED NODE   READINESS GATES\n"
        "web-1   1/1     Running   0          2m    10.244.0.5   node1   <none>           <none>\n")


def test_all_namespaces_and_labels_and_kind_prefix():
    p = pod(labels={"app": "web", "pod-template-hash": "5d"})
    out = P.table("Pod", [p], all_namespaces=True, show_labels=True, with_kind=True, now=NOW)
    assert out == ("NAMESPACE   NAME        READY   STATUS    RESTARTS   AGE   LABELS\n"
                   "default     pod/web-1   1/1     Running   0          2m    app=web,pod-template-hash=5d\n")


def workload(kind, **status):
    return {"kind": kind, "metadata": meta("web", 3600 * 3), "status": status,
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}, {"name": "log", "image": "busybox"}]}}}}


def test_deployment_and_replicaset():
    d = workload("Deployment", readyReplicas=2, updatedReplicas=3, availableReplicas=2)
    assert P.table("Deployment", [d], wide=True, now=NOW) == (
        "NAME   READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES          SELECTOR\n"
        "web    2/3     3            2           3h    web,log      nginx,busybox   app=web\n")
    rs = workload("ReplicaSet", replicas=3, readyReplicas=3)
    assert P.table("ReplicaSet", [rs], now=NOW) == (
        "NAME   DESIRED   CURRENT   READY   AGE\n"
        "web    3         3         3       3h\n")


def test_namespace_node_event():
    ns = {"metadata": meta("default", 86400 * 2, ns=None), "status": {"phase": "Active"}}
    assert P.table("Namespace", [ns], now=NOW) == "NAME      STATUS   AGE\ndefault   Active   2d\n"
    node = {"metadata": {"name": "node1", "creationTimestamp": ago(600),
                         "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0-nsplane"},
                       "addresses": [{"type": "InternalIP", "address": "172.30.0.2"}]}}
    assert P.row("Node", node, now=NOW) == ["node1", "Ready", "control-plane", "10m", "v1.32.0-nsplane"]
    assert P.row("Node", node, wide=True, now=NOW)[5:] == ["172.30.0.2", "<none>", "<unknown>", "<unknown>", "<unknown>"]
    node["spec"] = {"unschedulable": True}
    node["status"]["conditions"][0]["status"] = "False"
    assert P.row("Node", node, now=NOW)[1] == "NotReady,SchedulingDisabled"
    ev = {"metadata": meta("web.1", 30), "type": "Normal", "reason": "ClusterIPAllocated", "lastTimestamp": ago(30),
          "involvedObject": {"kind": "Service", "name": "web"}, "message": "Cluster IP [IPv4]: 10.96.142.31 "}
    assert P.table("Event", [ev], now=NOW) == (
        "LAST SEEN   TYPE     REASON               OBJECT        MESSAGE\n"
        "30s         Normal   ClusterIPAllocated   service/web   Cluster IP [IPv4]: 10.96.142.31\n")


def test_tabwriter_min_width():
    assert P.tabulate([["A", "B"], ["x", "y"]]) == "A     B\nx     y\n"


def test_no_resources_message():
    assert P.no_resources_message("default") == "No resources found in default namespace."
    assert P.no_resources_message("default", all_namespaces=True) == "No resources found"
    assert P.no_resources_message(None, namespaced=False) == "No resources found"


def test_yaml_is_kubectl_shaped():
    obj = {"kind": "Service", "apiVersion": "v1",
           "metadata": {"name": "web", "creationTimestamp": "2024-03-01T12:00:00Z",
                        "annotations": {"a": "line1\nline2\n", "n": "80", "b": "true", "e": ""}},
           "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "clusterIP": "10.96.0.5"}}
    assert P.to_yaml(obj) == (
        "apiVersion: v1\n"
        "kind: Service\n"
        "metadata:\n"
        "  annotations:\n"
        "    a: |\n"
        "      line1\n"
        "      line2\n"
        '    b: "true"\n'
        '    e: ""\n'
        '    n: "80"\n'
        '  creationTimestamp: "2024-03-01T12:00:00Z"\n'
        "  name: web\n"
        "spec:\n"
        "  clusterIP: 10.96.0.5\n"
        "  ports:\n"
        "  - port: 80\n"
        "    protocol: TCP\n")


def test_json_and_list_wrapper():
    assert P.to_json({"b": "<none>", "a": 1}) == '{\n    "a": 1,\n    "b": "\\u003cnone\\u003e"\n}\n'
    assert P.list_wrapper([]) == {"apiVersion": "v1", "items": [], "kind": "List", "metadata": {"resourceVersion": ""}}
    assert P.to_yaml([]) == "apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: \"\"\n"
