"""The Go behaviour agnhost's stand-ins copy, as pure functions: what Go
prints (JSON, %q, durations, paths, content types) and how cobra/pflag read
a command line."""

import pytest

from agent.node.workloads.agnhost import flags, gofmt
from agent.node.workloads.agnhost.flags import Flag


@pytest.mark.parametrize("value,text", [
    ({"responses": ["a<b>&c"], "errors": ["x\n\t\"y\""]},
     '{"errors":["x\\n\\t\\"y\\""],"responses":["a\\u003cb\\u003e\\u0026c"]}'),
    ({}, "{}"),
    ({"k": ["é\u2028\x01"]}, '{"k":["é\\u2028\\u0001"]}'),
])
def test_json_marshal_is_encoding_json(value, text):
    assert gofmt.json_marshal(value) == text


def test_json_struct_keeps_field_order():
    assert gofmt.json_struct([("Method", "GET"), ("Body", "foo")]) == '{"Method":"GET","Body":"foo"}'


@pytest.mark.parametrize("text,quoted", [
    ("abc", '"abc"'), ('a"b', '"a\\"b"'), ("a\nb", '"a\\nb"'), ("\x01", '"\\x01"'), ("é", '"é"'),
])
def test_quote_is_percent_q(text, quoted):
    assert gofmt.quote(text) == quoted


@pytest.mark.parametrize("text,ns,shown", [
    ("0", 0, "0s"), ("1.5s", 1_500_000_000, "1.5s"), ("300ms", 300_000_000, "300ms"),
    ("90s", 90_000_000_000, "1m30s"), ("2h", 7_200_000_000_000, "2h0m0s"), ("-1s", -1_000_000_000, "-1s"),
    (".5us", 500, "500ns"), ("1h2m3.25s", 3_723_250_000_000, "1h2m3.25s"),
])
def test_durations(text, ns, shown):
    assert gofmt.parse_duration(text) == ns
    assert gofmt.format_duration(ns) == shown


@pytest.mark.parametrize("text", ["", "5", "x", "1d", "s", "1.2.3s"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match=f"time: invalid duration {gofmt.quote(text)}"):
        gofmt.parse_duration(text)


def test_numbers():
    assert gofmt.atoi("+5") == 5 and gofmt.atoi("-07") == -7
    with pytest.raises(ValueError, match='strconv.Atoi: parsing "1e3": invalid syntax'):
        gofmt.atoi("1e3")
    assert [gofmt.parse_int(t) for t in ("80", "0x50", "0120", "0b1")] == [80, 80, 80, 1]
    assert gofmt.parse_bool("T") is True and gofmt.parse_bool("0") is False


@pytest.mark.parametrize("path,clean", [
    ("", "/"), ("/", "/"), ("//hostname", "/hostname"), ("/a/../b/", "/b/"), ("/a/./b", "/a/b"),
    ("/..", "/"), ("x", "/x"),
])
def test_mux_clean_path(path, clean):
    assert gofmt.mux_clean_path(path) == clean


def test_parse_query_is_url_parsequery():
    assert gofmt.parse_query("msg=hello+w%20orld&code=&a;b=1&x=%zz&msg=2") == \
        {"msg": ["hello w orld", "2"], "code": [""]}


@pytest.mark.parametrize("body,kind", [
    (b"NOW: 2025", "text/plain; charset=utf-8"), (b"  <html><body>", "text/html; charset=utf-8"),
    (b'{"responses":[]}', "text/plain; charset=utf-8"), (b"<?xml version", "text/xml; charset=utf-8"),
    (b"\x00\x01", "application/octet-stream"), (b"%PDF-1.4", "application/pdf"),
])
def test_detect_content_type(body, kind):
    assert gofmt.detect_content_type(body) == kind


def test_small_helpers():
    assert gofmt.canonical_header_key("x-forwarded-for") == "X-Forwarded-For"
    assert gofmt.addr_string(("::ffff:10.0.0.1", 80)) == "10.0.0.1:80"
    assert gofmt.addr_string(("fd00::1", 80)) == "[fd00::1]:80"
    assert gofmt.map_string({"output": "x", "error": "e"}) == "map[error:e output:x]"
    assert gofmt.status_text(299) == "" and gofmt.status_text(412) == "Precondition Failed"


FLAGS = [Flag("port", "int", 9376), Flag("tcp", "bool", False), Flag("http", "bool", True),
         Flag("timeout", "duration", 0)]


def test_pflag_forms():
    parsed = flags.parse(FLAGS, ["--port", "80", "--tcp", "--http=false", "extra", "--timeout=3s", "--v=4"])
    assert (parsed["port"], parsed["tcp"], parsed["http"], parsed["timeout"]) == (80, True, False, 3_000_000_000)
    assert parsed.args == ["extra"]
    assert flags.parse(FLAGS, ["--", "--port=1"]).args == ["--port=1"]
    # a bool flag takes no separate value: "false" is an argument
    parsed = flags.parse(FLAGS, ["--http", "false"])
    assert parsed["http"] is True and parsed.args == ["false"]


@pytest.mark.parametrize("argv,message", [
    (["--bogus"], "unknown flag: --bogus"),
    (["--port"], "flag needs an argument: --port"),
    (["--port=x"], 'invalid argument "x" for "--port" flag: strconv.ParseInt: parsing "x": invalid syntax'),
    (["-port=80"], "unknown shorthand flag: 'p' in -port=80"),
])
def test_pflag_errors(argv, message):
    with pytest.raises(flags.UsageError, match=message.replace("(", r"\(")):
        flags.parse(FLAGS, argv)
