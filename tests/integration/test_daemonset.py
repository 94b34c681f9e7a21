"""DaemonSet on a real two-node cluster with real kubectl: one pod per
node, a third pod when `nsplane node add` brings a node and one less after
`nsplane node remove`, a rolling update (maxUnavailable 1) watched with
`kubectl rollout status`, history and undo, and the Table kubectl prints."""
import pytest

from tests.integration.cluster import ThrowawayCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AGENT = """\
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers:
      - name: nginx
        image: nginx
        readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}
"""


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with ThrowawayCluster(str(tmp_path_factory.mktemp("cluster")), nodes=2, dns=False) as tc:
        tc.kubectl("apply", "-f", "-", input=AGENT)
        yield tc


def nodes_of(c) -> list[str]:
    return sorted(p["spec"].get("nodeName", "") for p in c.ready_pods("app=agent"))


def test_one_pod_per_node_following_node_add_and_remove(c):
    c.wait(lambda: nodes_of(c) == ["node-1", "node-2"], 60, "an agent pod on each node")
    st = c.get("daemonset", "agent")["status"]
    assert (st["desiredNumberScheduled"], st["currentNumberScheduled"], st["numberReady"]) == (2, 2, 2)
    out = c.kubectl("get", "daemonset", "agent").stdout.splitlines()
    assert out[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE",
                              "SELECTOR", "AGE"]
    c.wait(lambda: c.kubectl("get", "daemonset", "agent").stdout.splitlines()[1].split()[:7] ==
           ["agent", "2", "2", "2", "2", "2", "<none>"], 30, "the DaemonSet row")
    c.nsplane("node", "add", timeout=180)
    c.wait(lambda: nodes_of(c) == ["node-1", "node-2", "node-3"], 90, "an agent pod on the new node")
    c.nsplane("node", "remove", "node-3", timeout=180)
    c.wait(lambda: sorted(p["spec"].get("nodeName", "") for p in c.get("pods", "-l", "app=agent")["items"])
           == ["node-1", "node-2"], 60, "the removed node's pod gone")
    c.wait(lambda: c.get("daemonset", "agent")["status"]["desiredNumberScheduled"] == 2, 30, "desired back to 2")


def test_rolling_update_history_and_undo(c):
    c.kubectl("set", "env", "daemonset/agent", "VERSION=2")
    r = c.kubectl("rollout", "status", "daemonset/agent", "--timeout=120s", timeout=130)
    assert 'daemon set "agent" successfully rolled out' in r.stdout
    pods = c.get("pods", "-l", "app=agent")["items"]
    assert len(pods) == 2 and all(p["spec"]["containers"][0].get("env") == [{"name": "VERSION", "value": "2"}]
                                  for p in pods)
    hist = c.kubectl("rollout", "history", "daemonset/agent").stdout
    assert [line.split()[0] for line in hist.splitlines()[2:] if line.strip()] == ["1", "2"]
    c.kubectl("rollout", "undo", "daemonset/agent")
    c.kubectl("rollout", "status", "daemonset/agent", "--timeout=120s", timeout=130)
    c.wait(lambda: all("env" not in p["spec"]["containers"][0] for p in c.get("pods", "-l", "app=agent")["items"]),
           30, "pods back on the first template")
