"""A Service's rules found in iptables-save output, checked per node and
annotated for `nsplane explain`."""
from agent.cli.doctor.rules import annotate, check_node, explain, service_rules
from dataplane.iptables import parse_rules

SAVE = """*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-LOLE - [0:0]
:KUBE-SEP-ONE - [0:0]
:KUBE-SEP-TWO - [0:0]
:KUBE-SVC-OTHR - [0:0]
-A KUBE-SERVICES -d 10.96.5.5/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j KUBE-SVC-LOLE
-A KUBE-SERVICES -d 10.96.6.6/32 -p tcp -m comment --comment "default/webby cluster IP" -m tcp --dport 80 -j KUBE-SVC-OTHR
-A KUBE-SVC-LOLE ! -s 10.244.0.0/16 -d 10.96.5.5/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-LOLE -m comment --comment "default/web -> 10.244.1.2:80" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-ONE
-A KUBE-SVC-LOLE -m comment --comment "default/web -> 10.244.1.3:80" -j KUBE-SEP-TWO
-A KUBE-SEP-ONE -s 10.244.1.2/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-ONE -p tcp -m tcp -j DNAT --to-destination 10.244.1.2:80
-A KUBE-SEP-TWO -s 10.244.1.3/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-TWO -p tcp -m tcp -j DNAT --to-destination 10.244.1.3:80
COMMIT
"""
SVC = {"spec": {"clusterIP": "10.96.5.5", "ports": [{"port": 80, "protocol": "TCP"}]}}


def test_service_rules_follow_jumps_to_uncommented_endpoint_chains():
    mine = service_rules(parse_rules(SAVE), "default", "web")["nat"]
    assert set(mine) == {"KUBE-SERVICES", "KUBE-SVC-LOLE", "KUBE-SEP-ONE", "KUBE-SEP-TWO"}
    assert len(mine["KUBE-SERVICES"]) == 1   # not default/webby's


def test_check_node_counts_endpoints_and_spots_stale_ones():
    tables = parse_rules(SAVE)
    ok, said = check_node(tables, "default", "web", SVC, {"10.244.1.2", "10.244.1.3"})
    assert ok and "KUBE-SVC-LOLE (2 endpoint(s))" in said
    ok, said = check_node(tables, "default", "web", SVC, {"10.244.1.2"})
    assert not ok and "stale" in said
    ok, said = check_node(tables, "default", "web", SVC, set())
    assert not ok and "REJECT" in said


def test_explain_orders_entry_first_and_annotates():
    groups = explain(parse_rules(SAVE), "default", "web")
    assert [g["chain"] for g in groups] == ["KUBE-SERVICES", "KUBE-SVC-LOLE", "KUBE-SEP-ONE", "KUBE-SEP-TWO"]
    svc_rules = [r["meaning"] for r in groups[1]["rules"]]
    assert "mark for masquerade" in svc_rules[0] and "not from 10.244.0.0/16" in svc_rules[0]
    assert svc_rules[1].endswith("with probability 0.500: go to endpoint 10.244.1.2:80")
    assert groups[2]["rules"][1]["meaning"] == "DNAT to endpoint 10.244.1.2:80"


def test_annotate_session_affinity():
    rule = ('-A KUBE-SVC-X -m comment --comment "default/web -> 10.244.1.2:80" -m recent --name KUBE-SEP-A '
            '--rcheck --seconds 10800 --reap -j KUBE-SEP-A')
    assert "a client seen in the last 10800s" in annotate(rule)


def test_check_node_wants_the_node_port_and_load_balancer_ip():
    save = SAVE.replace("COMMIT\n", '-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web" -m tcp --dport 30080 '
                                    '-j KUBE-EXT-LOLE\nCOMMIT\n').replace(":KUBE-SVC-OTHR", ":KUBE-NODEPORTS - [0:0]\n:KUBE-SVC-OTHR")
    svc = {"spec": {"clusterIP": "10.96.5.5", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "172.28.0.200"}]}}}
    ready = {"10.244.1.2", "10.244.1.3"}
    ok, said = check_node(parse_rules(save), "default", "web", svc, ready)
    assert not ok and said == "no KUBE-SERVICES rule for load-balancer IP 172.28.0.200:80"
    ok, said = check_node(parse_rules(SAVE), "default", "web", svc, ready)
    assert not ok and said == "no KUBE-NODEPORTS rule for nodePort 30080"
    del svc["status"]
    assert check_node(parse_rules(save), "default", "web", svc, ready)[0]


def test_filter_chains_have_their_own_roles_and_a_rule_without_target_is_said():
    groups = explain(parse_rules(SAVE.replace("*nat", "*filter")), "default", "web")
    assert groups[0]["role"].startswith("filter: rejects")
    assert annotate('-A KUBE-FW-X -m comment --comment "other traffic"').endswith("goes on to the next rule")
