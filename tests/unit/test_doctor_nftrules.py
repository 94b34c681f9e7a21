"""`nsplane doctor`'s node-rules step and `explain` in nftables mode, on the
table captured from the kernel (nft_captured_table.json, see
test_nft_listing_walk.py) and through checks.diagnose."""
import json
import os

import pytest

from agent.cli.doctor import nftrules
from agent.cli.doctor.checks import FAIL, OK, diagnose
from dataplane.nft import listing
from tests.unit.test_doctor_checks import facts

HERE = os.path.dirname(__file__)


@pytest.fixture(scope="module")
def table():
    with open(os.path.join(HERE, "nft_captured_table.json")) as f:
        return listing.parse(json.load(f))


def svc(name="web", ip="10.96.31.254", node_port=30080, lb=None, ranges=None):
    port = {"port": 80, "targetPort": 8080, "protocol": "TCP", **({"nodePort": node_port} if node_port else {})}
    out = {"metadata": {"name": name, "namespace": "default"},
           "spec": {"type": "LoadBalancer" if lb else "NodePort" if node_port else "ClusterIP", "clusterIP": ip,
                    "selector": {"app": name}, "ports": [port], "loadBalancerSourceRanges": ranges or []}}
    if lb:
        out["status"] = {"loadBalancer": {"ingress": [{"ip": lb}]}}
    return out


def test_service_with_endpoints_names_its_chain(table):
    ok, said = nftrules.check_node(table, svc(lb="172.28.0.200"), {"10.244.0.5", "10.244.1.2"})
    assert ok, said
    assert said == "10.96.31.254 . tcp . 80 in @service-ips: goto service-SUSTUHLJ-default/web/tcp/http (2 endpoint(s))"


def test_stale_endpoints_missing_elements_and_no_endpoints(table):
    ok, said = nftrules.check_node(table, svc(), {"10.244.0.5"})
    assert not ok and "stale rules" in said and "['10.244.0.5', '10.244.1.2']" in said
    ok, said = nftrules.check_node(table, svc(ip="10.96.9.9"), 1)
    assert not ok and said == "no element 10.96.9.9 . tcp . 80 in map service-ips (nftables)"
    ok, said = nftrules.check_node(table, svc(node_port=31999), 2)
    assert not ok and "tcp . 31999" in said
    ok, said = nftrules.check_node(table, svc("nobody", "10.96.7.7", None), 0)
    assert ok and said == "10.96.7.7 . tcp . 80 in @no-endpoint-services: goto reject-chain (no endpoints)"
    assert not nftrules.check_node(table, svc(node_port=None), 0)[0]


def test_diagnose_reads_nftables_rules_and_says_where_sources_are_dropped(table):
    f = facts(service=svc(lb="172.28.0.200", ranges=["172.28.0.0/16"]), node_rules={"node-1": table},
              slices=[{"metadata": {"name": "web-x"}, "endpoints": [
                  {"addresses": [ip], "conditions": {"ready": True}, "nodeName": "node-1"}
                  for ip in ("10.244.0.5", "10.244.1.2")]}], client="10.1.2.3")
    f["pods"] = []
    checks = {c.name: c for c in diagnose(f)}
    assert checks["node-rules"].status == OK
    assert "node-1: 10.96.31.254 . tcp . 80 in @service-ips" in checks["node-rules"].evidence
    assert checks["source-ranges"].status == FAIL and "firewall- chain (nftables" in checks["source-ranges"].evidence


def test_explain_lists_elements_and_chains(table):
    groups = nftrules.explain(table, svc(lb="172.28.0.200"))
    names = [g["chain"] for g in groups]
    assert names[:3] == ["map service-ips", "map service-nodeports", "map firewall-ips"]
    assert "endpoint-SVLGPL42-default/web/tcp/http__10.244.1.2/8080" in names
    text = nftrules.render_explain(groups, "node-1", "default", "web")
    assert "  meta l4proto tcp dnat to 10.244.1.2:8080" in text
    assert "  10.96.31.254 . tcp . 80 : goto service-SUSTUHLJ-default/web/tcp/http" in text
