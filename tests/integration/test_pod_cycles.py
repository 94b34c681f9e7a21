"""Pods created and deleted over and over leave nothing behind in the node
agent (issue 13, part 7: memory and fd count flat across create/delete
cycles): a Deployment of pods using a token volume (a ConfigMap watch and a
TokenRequest each) is created, Ready, deleted and gone, CYCLES times; the
agent's RSS, open fds and threads are printed after the first cycle, half
way and at the end, and must not grow after the first (thread pools and API
connections fill up in it). Then no mount, monitor or cgroup of those pods
is left. Bounded: CYCLES x BATCH pods, each wait 60 s at most (about a
minute in all on an idle machine)."""
import os
import time

import pytest
import yaml

from agent.cli.processes import running_pid
from agent.node.runtime import cgroups
from tests.integration.cluster import ThrowawayCluster
from tests.integration.manifests import AGNHOST

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CYCLES, BATCH = 12, 5


def _deployment() -> str:
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cyc"},
        "spec": {"replicas": BATCH, "selector": {"matchLabels": {"app": "cyc"}},
                 "template": {"metadata": {"labels": {"app": "cyc"}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "p", "image": AGNHOST, "args": ["pause"]}]}}}})


def _usage(pid: int) -> tuple[float, int, int]:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return (int(fields["VmRSS"].split()[0]) / 1024, len(os.listdir(f"/proc/{pid}/fd")),
            int(fields["Threads"]))


def test_create_delete_cycles_leave_the_agent_flat(tmp_path):
    with ThrowawayCluster(str(tmp_path), dns=False) as c:
        agent = running_pid(c.cfg, "node-1")
        seen = {}
        for i in range(1, CYCLES + 1):
            c.apply(_deployment())
            c.wait_ready("app=cyc", BATCH, timeout=60)
            c.kubectl("delete", "deployment", "cyc", "--wait=false")
            c.wait(lambda: not c.get("pods", "-l", "app=cyc")["items"], 60, "the cycle's pods gone")
            if i in (1, CYCLES // 2, CYCLES):
                time.sleep(1)       # the last pod's teardown (after it left the API) has finished
                seen[i] = _usage(agent)
                print(f"cycle {i}: node agent RSS {seen[i][0]:.1f} MB, {seen[i][1]} open fds, "
                      f"{seen[i][2]} threads")
        assert running_pid(c.cfg, "node-1") == agent, "the node agent restarted meanwhile"
        (rss1, fds1, thr1), (_, fds_mid, thr_mid), (rss_end, fds_end, thr_end) = (seen[k] for k in sorted(seen))
        assert fds_end <= fds1 + 2 and fds_end <= fds_mid + 2, seen
        assert thr_end <= thr1 + 2 and thr_end <= thr_mid + 2, seen
        assert rss_end <= rss1 * 1.15, seen
        node_dir = os.path.join(c.cfg.dir, "nodes", "node-1")
        with open("/proc/self/mountinfo") as f:
            assert not [line for line in f if node_dir in line and "/containers/" in line]
        assert not os.listdir(os.path.join(node_dir, "containers"))
        pods = [d for g in cgroups.leftovers() if os.path.basename(g) == c.cfg.name
                for _, dirs, _ in os.walk(g) for d in dirs if d.startswith("pod")]
        assert pods == []
