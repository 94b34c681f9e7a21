"""Host mode's pure parts: config, node token, egress rules; the systemd units."""
import configparser
import os

import pytest

from agent.api.config import ClusterConfig
from agent.cli import hostmode
from agent.cli.main import parser
from agent.node import hostnode
from dataplane.iptables import TableState

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def server_cfg() -> ClusterConfig:
    cfg = ClusterConfig(name="nsplane", state_dir="/var/lib/nsplane")
    return hostmode.configure(cfg, "eth1", "node-1", "192.168.56.10", 24, masquerade=True)


def test_configure_makes_the_interface_the_node():
    cfg = server_cfg()
    assert (cfg.host_mode, cfg.host_iface, cfg.host_node) == (True, "eth1", "node-1")
    assert cfg.underlay_cidr == "192.168.56.0/24"
    assert cfg.host_ip == "192.168.56.10"            # the API listens and is advertised here
    assert cfg.api_url == "https://192.168.56.10:6443"
    assert cfg.load_balancer_pool == "192.168.56.200-192.168.56.250"
    assert cfg.masquerade_egress is True


def test_node_token_round_trip_gives_a_joined_config():
    cfg = server_cfg()
    cfg.service_cidr, cfg.dns_ip = "10.100.0.0/16", "10.100.0.10"
    doc = hostmode.token_document(cfg, "PEM", {"node": "n", "coredns": "c"})
    local = hostmode.joined_config(doc, "/var/lib/nsplane")
    assert local.name == "nsplane" and local.host_mode
    assert (local.service_cidr, local.dns_ip, local.cluster_cidr) == ("10.100.0.0/16", "10.100.0.10", "10.244.0.0/16")
    assert local.node_port_range == (30000, 32767)
    assert local.api_url == "https://192.168.56.10:6443"     # a joined machine talks to the server
    hostmode.configure(local, "eth1", "node-2", "192.168.56.11", 24)
    assert local.advertise_address == "" and local.api_url == "https://192.168.56.10:6443"
    other = hostmode.joined_config(doc, "/tmp/x", server="https://10.0.0.1:6443", name="nsplane-b")
    assert (other.api_url, other.name, other.state_dir) == ("https://10.0.0.1:6443", "nsplane-b", "/tmp/x")


def test_a_file_that_is_not_a_node_token_is_refused():
    with pytest.raises(hostmode.HostModeError, match="node-token"):
        hostmode.joined_config({"kind": "Config"}, "/tmp")


def test_egress_masquerade_rules():
    empty = TableState(set(), [])
    on = hostnode.egress_restore("10.244.0.0/16", True, empty)
    assert on.splitlines() == [
        "*nat", ":NSPLANE-EGRESS - [0:0]",
        '-A NSPLANE-EGRESS -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "pod to pod: no SNAT" -j RETURN',
        "-A NSPLANE-EGRESS -s 10.244.0.0/16 -d 224.0.0.0/4 -j RETURN",
        '-A NSPLANE-EGRESS -s 10.244.0.0/16 -m comment --comment "pods to the outside: SNAT to the node" '
        "-j MASQUERADE",
        f"-A POSTROUTING {hostnode.EGRESS_JUMP}", "COMMIT"]
    jump = f"-A POSTROUTING {hostnode.EGRESS_JUMP}"
    twice = TableState({"NSPLANE-EGRESS"}, [jump, jump])
    again = hostnode.egress_restore("10.244.0.0/16", True, twice)
    assert again.count(f"-D POSTROUTING {hostnode.EGRESS_JUMP}") == 1 and jump not in again
    assert hostnode.egress_restore("10.244.0.0/16", False, empty) == ""
    off = hostnode.egress_restore("10.244.0.0/16", False, TableState({"NSPLANE-EGRESS"}, [jump]))
    assert "-X NSPLANE-EGRESS" in off and f"-D POSTROUTING {hostnode.EGRESS_JUMP}" in off
    assert "MASQUERADE" not in off


def test_cli_flags():
    args = parser().parse_args(["up", "--host-mode", "--iface", "eth1", "--masquerade-egress", "--allow-root-netns"])
    assert (args.host_mode, args.iface, args.masquerade_egress, args.allow_root_netns) == (True, "eth1", True, True)
    assert parser().parse_args(["up"]).masquerade_egress is None      # unchanged unless given
    args = parser().parse_args(["join", "--server", "https://192.168.56.10:6443", "--token-file", "t",
                                "--iface", "eth1", "--node-name", "node-2", "--no-masquerade-egress"])
    assert (args.server, args.token_file, args.node_name, args.masquerade_egress) == (
        "https://192.168.56.10:6443", "t", "node-2", False)


@pytest.mark.parametrize("unit,module", [("nsplane-server.service", "agent.controlplane"),
                                         ("nsplane-agent.service", "agent.node")])
def test_systemd_units(unit, module):
    ini = configparser.ConfigParser(strict=False, interpolation=None)
    ini.read(os.path.join(REPO, "vagrant", "systemd", unit))
    svc = ini["Service"]
    assert svc["ExecStart"].split() == ["/opt/nsplane/venv/bin/python", "-m", module, "--config",
                                        ClusterConfig().path]
    assert svc["Restart"] == "on-failure"
    assert svc["KillMode"] == "process", "a restart must not kill the pods (the agent's children)"
    assert svc["StandardOutput"] == "journal"
    assert unit in hostmode.UNITS.values()
    assert ini["Install"]["WantedBy"] == "multi-user.target"
