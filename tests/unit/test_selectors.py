"""Label/field selector parsing and matching, against kube's grammar and wording."""
import pytest

from agent.api import fields as F
from agent.api import selectors as S

KEY_ERR = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
           "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
           "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


@pytest.mark.parametrize("text, canonical", [
    ("app=web", "app=web"),
    ("app==web", "app==web"),
    ("app!=web", "app!=web"),
    ("tier in (fe, be),app", "app,tier in (be,fe)"),
    ("env notin (prod)", "env notin (prod)"),
    ("!canary", "!canary"),
    ("  app = web ,  b ", "app=web,b"),
    ("kubernetes.io/service-name=web", "kubernetes.io/service-name=web"),
    ("a=", "a="),
    ("a in ()", "a in ()"),
    ("a>5,b<3", "a>5,b<3"),
    ("", ""),
])
def test_parse_canonical_string(text, canonical):
    assert str(S.parse(text)) == canonical


@pytest.mark.parametrize("text, labels, want", [
    ("app=web", {"app": "web"}, True),
    ("app=web", {"app": "webb"}, False),
    ("app=web", {}, False),
    ("app!=web", {}, True),
    ("app!=web", {"app": "web"}, False),
    ("tier in (fe,be)", {"tier": "be"}, True),
    ("tier in (fe,be)", {}, False),
    ("tier notin (fe)", {}, True),
    ("tier notin (fe)", {"tier": "fe"}, False),
    ("app", {"app": ""}, True),
    ("app", {}, False),
    ("!app", {}, True),
    ("!app", {"app": "x"}, False),
    ("app=web,tier=fe", {"app": "web", "tier": "fe"}, True),
    ("app=web,tier=fe", {"app": "web"}, False),
    ("a>5", {"a": "7"}, True),
    ("a>5", {"a": "x"}, False),
    ("a<5", {"a": "7"}, False),
    ("", {"anything": "x"}, True),
])
def test_matches(text, labels, want):
    assert S.parse(text).matches(labels) is want


@pytest.mark.parametrize("text, message", [
    ("a in", "unable to parse requirement: found '' expected: '('"),
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("x,", "found '', expected: identifier after ','"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
    ("a@b=c", 'unable to parse requirement: key: Invalid value: "a@b": ' + KEY_ERR),
    ("a<x", "unable to parse requirement: values[0]: Invalid value: \"x\": "
            "for 'Gt', 'Lt' operators, the value must be an integer"),
])
def test_parse_errors_use_kube_wording(text, message):
    with pytest.raises(ValueError) as e:
        S.parse(text)
    assert str(e.value) == message


def test_bad_value_names_the_value_and_key():
    with pytest.raises(ValueError) as e:
        S.parse("app=x@y")
    assert str(e.value).startswith('unable to parse requirement: values[0][app]: Invalid value: "x@y": '
                                   "a valid label must be an empty string")


def test_from_map_empty_selects_nothing_for_services():
    assert S.from_map({}).matches({"app": "web"}) is False
    assert S.from_map(None).matches({}) is False
    assert S.from_map({}, empty_selects_all=True).matches({"app": "web"}) is True
    sel = S.from_map({"app": "web", "tier": "fe"})
    assert str(sel) == "app=web,tier=fe"
    assert sel.matches({"app": "web", "tier": "fe", "x": "y"})
    assert not sel.matches({"app": "web"})


def test_from_map_rejects_non_strings():
    with pytest.raises(ValueError, match="not a string"):
        S.from_map({"app": 1})


def test_label_selector_nil_vs_empty():
    assert S.from_label_selector(None).matches({}) is False
    assert S.from_label_selector(None).empty is False
    assert S.from_label_selector({}).matches({"a": "b"}) is True
    assert S.from_label_selector({}).empty is True


def test_label_selector_expressions():
    sel = S.from_label_selector({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                             {"key": "canary", "operator": "DoesNotExist"},
                             {"key": "env", "operator": "NotIn", "values": ["prod"]},
                             {"key": "team", "operator": "Exists"}]})
    assert str(sel) == "app=web,!canary,env notin (prod),team,tier in (be,fe)"
    assert sel.matches({"app": "web", "tier": "fe", "team": "a"})
    assert not sel.matches({"app": "web", "tier": "fe", "team": "a", "canary": "1"})
    assert not sel.matches({"app": "web", "tier": "fe", "team": "a", "env": "prod"})
    assert not sel.matches({"app": "web", "tier": "qa", "team": "a"})


def test_label_selector_bad_operator():
    with pytest.raises(ValueError) as e:
        S.from_label_selector({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]})
    assert str(e.value) == '"Equals" is not a valid label selector operator'


def test_label_selector_in_needs_values():
    with pytest.raises(ValueError, match="values set can't be empty"):
        S.from_label_selector({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})


POD = {"metadata": {"name": "web-1", "namespace": "default"},
       "spec": {"nodeName": "node1", "hostNetwork": False}, "status": {"phase": "Running"}}


@pytest.mark.parametrize("text, want", [
    ("metadata.name=web-1", True),
    ("metadata.name==web-1", True),
    ("metadata.name!=web-1", False),
    ("metadata.namespace=default,spec.nodeName=node1", True),
    ("spec.nodeName=node2", False),
    ("status.phase!=Pending", True),
    ("spec.hostNetwork=false", True),
    ("status.podIP=", True),
    ("", True),
])
def test_field_selectors(text, want):
    assert F.parse_fields(text, "Pod")(POD) is want


def test_field_selector_errors():
    with pytest.raises(ValueError) as e:
        F.parse_fields("spec.foo=x", "Pod")
    assert str(e.value) == "field label not supported: spec.foo"
    with pytest.raises(ValueError) as e:
        F.parse_fields("spec.nodeName=x", "Service")
    assert str(e.value) == "field label not supported: spec.nodeName"
    with pytest.raises(ValueError) as e:
        F.parse_fields("metadata.name", "Pod")
    assert str(e.value) == "invalid selector: 'metadata.name'; can't understand 'metadata.name'"


def test_field_selector_escapes():
    obj = {"metadata": {"name": "a,b"}}
    assert F.parse_fields(r"metadata.name=a\,b")(obj)
