"""A fuzz test of the API server's request path, over real sockets on
loopback and the Unix socket (no root): random and malformed bodies,
headers, paths, methods and sizes, every one of them refused. Whatever a
client sends, the answer is a 4xx Status (never a 5xx, never a dropped
connection without an answer) and the store does not change. Bounded:
a fixed number of requests per seed, each with a socket timeout.

NSPLANE_FUZZ_SEED=<n> replays one seed; a failure prints its seed and request.
"""
import copy
import json
import os
import random
import socket
import threading

import pytest

from agent.apiserver.registry import Registry
from agent.apiserver.serving import APIServer
from agent.apiserver.store import Store
from agent.controllers import bootstrap

REQUESTS_PER_SEED = 200
SEEDS = [int(os.environ["NSPLANE_FUZZ_SEED"])] if os.environ.get("NSPLANE_FUZZ_SEED") else [1, 2, 3]

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fz", "labels": {"app": "fz"}},
       "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}}
SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "fz"},
       "spec": {"selector": {"app": "fz"}, "ports": [{"port": 80, "targetPort": 80}]}}
CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fz"}, "data": {"k": "v"}}
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fz"},
          "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "fz"}},
                   "template": {"metadata": {"labels": {"app": "fz"}}, "spec": POD["spec"]}}}
BODIES = {"pods": POD, "services": SVC, "configmaps": CM, "deployments": DEPLOY}
PATHS = {"pods": "/api/v1/namespaces/default/pods", "services": "/api/v1/namespaces/default/services",
         "configmaps": "/api/v1/namespaces/default/configmaps",
         "deployments": "/apis/apps/v1/namespaces/default/deployments"}
# Values of a JSON type their field's schema type does not take (Go's unmarshal errors).
WRONG_TYPES = [
    (("metadata",), [[], "x", 5]), (("metadata", "name"), [5, True, [], {}]), (("metadata", "labels"), ["x", [1]]),
    (("metadata", "labels", "app"), [1, False, {}]), (("metadata", "annotations"), [7]),
    (("spec",), ["x", 3, []]), (("data",), ["x", [1]]), (("data", "k"), [1, {}]),
    (("spec", "containers"), ["x", {}]), (("spec", "containers", 0, "ports", 0, "containerPort"), ["80", 80.5, {}]),
    (("spec", "ports"), [{}, "80"]), (("spec", "ports", 0, "port"), ["80", 1.5, True]),
    (("spec", "selector"), [1, "app"]), (("spec", "replicas"), ["3", 1.5, []]),
    (("spec", "template", "spec", "containers"), [{"name": "c"}, 4]),
]


@pytest.fixture
def api(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    from agent.api.kinds import BY_RESOURCE
    for resource, body in BODIES.items():
        registry.create(BY_RESOURCE[resource], "default", copy.deepcopy(body))
    server = APIServer(registry, [("127.0.0.1", 0)], str(tmp_path / "api.sock"), read_timeout=0.3, idle_timeout=0.5,
                       read_deadline=1.0)
    server.start()
    yield server, store
    server.stop()
    store.close()


def snapshot(store: Store) -> str:
    from agent.api.kinds import KINDS
    return json.dumps([store.resource_version] + [store.list(k.resource, None)[0] for k in KINDS], sort_keys=True)


# ---- generators: each returns (method, path, headers, body), every one invalid ----

def _set(obj, path, value):
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _has(obj, path):
    for key in path:
        try:
            obj = obj[key]
        except (KeyError, IndexError, TypeError):
            return False
    return True


def _target(r, named=False):
    resource = r.choice(list(BODIES))
    body = copy.deepcopy(BODIES[resource])
    path = PATHS[resource] + ("/fz" if named else "")
    return resource, body, path


def gen_truncated(r):
    _, body, path = _target(r)
    raw = json.dumps(body).encode()
    return "POST", path, {"Content-Type": "application/json"}, raw[:r.randrange(1, len(raw))]


def gen_not_an_object(r):
    named = r.random() < 0.5
    _, _, path = _target(r, named)
    value = r.choice([[1, 2, 3], "pod", 42, 3.5, True, None, [], [{"kind": "Pod"}]])
    return "PUT" if named else "POST", path, {"Content-Type": "application/json"}, json.dumps(value).encode()


def gen_invalid_utf8(r):
    _, body, path = _target(r)
    body["metadata"]["name"] = "@@"
    raw = json.dumps(body).encode()
    bad = bytes(r.randrange(0x80, 0x100) for _ in range(r.randrange(1, 4)))
    if bad[0] >= 0xc0:
        bad = b"\x80" + bad           # never the start of a valid sequence
    return "POST", path, {"Content-Type": "application/json"}, raw.replace(b"@@", bad)


def gen_deep(r):
    _, _, path = _target(r)
    n = r.choice([250, 1000, 5000, 100_000])
    opener, closer = r.choice([("[", "]"), ('{"a":', "}")])
    raw = b'{"metadata":{"name":"fz-deep"},"spec":' + (opener * n + "1" + closer * n).encode() + b"}"
    method = r.choice(["POST", "PATCH"])
    return method, path + ("/fz" if method == "PATCH" else ""), {"Content-Type": "application/merge-patch+json"}, raw


def gen_wrong_kind(r):
    named = r.random() < 0.5
    resource, body, path = _target(r, named)
    other = r.choice([k for k in BODIES if k != resource])
    wrong = copy.deepcopy(BODIES[other]) if r.random() < 0.5 else dict(body, apiVersion=r.choice(
        ["v2", "apps/v9", "nope/v1", "v1beta1", 5, ["v1"]]))
    if other in ("pods", "services", "configmaps") and resource in ("pods", "services", "configmaps") \
            and "apiVersion" in wrong and wrong["apiVersion"] == "v1" and wrong.get("kind") == body["kind"]:
        wrong["kind"] = "Nope"
    wrong["metadata"] = {"name": "fz" if named else "fz-new"}
    return "PUT" if named else "POST", path, {"Content-Type": "application/json"}, json.dumps(wrong).encode()


def gen_wrong_type(r):
    named = r.random() < 0.4
    resource, body, path = _target(r, named)
    options = [(p, vals) for p, vals in WRONG_TYPES if _has(body, p)]
    field, values = r.choice(options)
    _set(body, field, r.choice(values))
    if not named:
        body["metadata"] = body["metadata"] if isinstance(body["metadata"], dict) else body["metadata"]
        if isinstance(body["metadata"], dict) and isinstance(body["metadata"].get("name"), str):
            body["metadata"]["name"] = "fz-new"
    method = "PUT" if named else "POST"
    ctype = "application/json"
    if named and r.random() < 0.5:
        method, ctype = "PATCH", r.choice(["application/merge-patch+json", "application/strategic-merge-patch+json"])
    return method, path, {"Content-Type": ctype}, json.dumps(body).encode()


def gen_bad_yaml(r):
    _, _, path = _target(r)
    raw = r.choice([b"? [a, b]\n: c\n", b"a: !!python/object:os.system x\n", b"[1, 2", b"- 1\n- 2\n",
                    b"metadata: {name: Not_A_Name}\nspec: 2024-01-01\n", b"\xff\xfe\x00", b"a: " + b"[" * 5000,
                    b"&a [*a]"])
    return "POST", path, {"Content-Type": "application/yaml"}, raw


def gen_bad_headers(r):
    _, body, path = _target(r)
    raw = json.dumps(dict(body, metadata={"name": "fz-h"})).encode()
    choice = r.randrange(6)
    if choice == 0:
        return "POST", path, {"Content-Type": "application/json", "Content-Length": r.choice(["abc", "-5", "1e3", ""]
                                                                                            )}, raw
    if choice == 1:
        return "POST", path, {"Content-Type": r.choice(["text/plain", "application/x-www-form-urlencoded", "\x01",
                                                        "application/vnd.kubernetes.protobuf"])}, raw
    if choice == 2:
        return "POST", path, {"Content-Type": "application/json", "Content-Length": str(len(raw) + 50)}, raw
    if choice == 3:
        return "POST", path, {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}, \
            r.choice([b"zz\r\n", b"-5\r\nabc\r\n0\r\n\r\n", b"ffffffffff\r\n"])
    if choice == 4:
        return "POST", path, {"Content-Type": "application/json", "X-Junk": "a" * r.randrange(70_000, 100_000)}, raw
    return "POST", path, {"Content-Type": "application/json", "Content-Length": str(3 * 1024 * 1024 + 1)}, raw


def gen_bad_query(r):
    resource, body, path = _target(r, True)
    method = r.choice(["GET", "DELETE", "DELETE", "PUT"])
    q = r.choice(["gracePeriodSeconds=abc", "propagationPolicy=Sideways", "dryRun=Maybe", "fieldValidation=Loud",
                  "limit=abc", "continue=%%%", "labelSelector=a%20in%20(", "fieldSelector=metadata.nope=1",
                  "resourceVersion=x&watch=1", "includeObject=Everything", "timeoutSeconds=abc&watch=true"])
    if method == "GET":
        path = PATHS[resource]
    raw = json.dumps(body).encode() if method == "PUT" else b""
    if method == "PUT" and not q.startswith(("dryRun", "fieldValidation")):
        q = "dryRun=Maybe"
    if method == "DELETE" and not q.startswith(("gracePeriodSeconds", "propagationPolicy", "dryRun")):
        q = "propagationPolicy=Sideways"
    return method, f"{path}?{q}", {"Content-Type": "application/json"}, raw


def gen_bad_delete_body(r):
    _, _, path = _target(r, True)
    raw = r.choice([b"[1]", b"{", b"\xff", json.dumps({"gracePeriodSeconds": "soon"}).encode(),
                    json.dumps({"preconditions": "x"}).encode(), json.dumps({"preconditions": {"uid": 5}}).encode(),
                    json.dumps({"propagationPolicy": 3}).encode(), json.dumps({"dryRun": "All"}).encode(),
                    json.dumps({"preconditions": {"uid": "not-the-uid"}}).encode()])
    return "DELETE", path, {"Content-Type": "application/json"}, raw


def gen_bad_path(r):
    junk = "".join(r.choice("abz/._-%~:?#[]@!$&'()*+,;=01") for _ in range(r.randrange(0, 40)))
    path = r.choice(["/api/v1/", "/apis/", "/api/v2/", "/apis/apps/v9/", "/", "/api/v1/namespaces/default/",
                     "/api/v1/namespaces/default/pods/fz/", "/apis/apps/v1/namespaces/default/deployments/fz/"]) + junk
    if r.random() < 0.1:
        path = "/" + "a" * r.randrange(10_000, 70_000)
    method = r.choice(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "FOO", "TRACE"])
    body = r.choice([b"", b"{}", b"[]", bytes(r.randrange(256) for _ in range(r.randrange(0, 200)))])
    if method in ("POST", "PUT", "PATCH", "DELETE") and path.rstrip("/").split("?")[0].split("#")[0] in (
            "/api/v1/namespaces/default/pods/fz", "/apis/apps/v1/namespaces/default/deployments/fz",
            "/api/v1/namespaces/default"):
        body = b"[]"          # the one shape here a write could take: refuse it by its body
    return method, path, {"Content-Type": "application/json"}, body


def gen_random_bytes(r):
    _, _, path = _target(r)
    raw = bytes(r.randrange(256) for _ in range(r.choice([1, 10, 1000, 65536])))
    return "POST", path, {"Content-Type": r.choice(["application/json", "application/yaml"])}, raw


def gen_json_patch(r):
    _, body, path = _target(r, True)
    options = [(p, vals) for p, vals in WRONG_TYPES if _has(body, p)]
    field, values = r.choice(options)
    pointer = "/" + "/".join(str(k) for k in field)
    ops = r.choice([[{"op": "replace", "path": pointer, "value": r.choice(values)}],
                    [{"op": "remove", "path": "/metadata"}], [{"op": "move", "from": "/nope", "path": "/x"}],
                    [{"op": "jump", "path": "/"}], {"op": "add"}, [1], [{"op": "test", "path": pointer, "value": 0}]])
    return "PATCH", path, {"Content-Type": "application/json-patch+json"}, json.dumps(ops).encode()


GENERATORS = [gen_json_patch, gen_truncated, gen_not_an_object, gen_invalid_utf8, gen_deep, gen_wrong_kind, gen_wrong_type,
              gen_bad_yaml, gen_bad_headers, gen_bad_query, gen_bad_delete_body, gen_bad_path, gen_random_bytes]


def send(address, method: str, path: str, headers: dict, body: bytes) -> tuple[int, bytes]:
    """One request on a fresh connection, written raw (no client library
    second-guesses a malformed header); the status code and the body."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(15)
        s.connect(address)
        head = [f"{method} {path} HTTP/1.1", "Host: fuzz", "Connection: close"]
        if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
            headers = {**headers, "Content-Length": str(len(body))}
        head += [f"{k}: {v}" for k, v in headers.items()]
        try:
            s.sendall("\r\n".join(head).encode("latin-1", "replace") + b"\r\n\r\n" + body)
        except (BrokenPipeError, ConnectionResetError):
            pass                 # the server may answer (413, 431) before reading everything
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    line = data.split(b"\r\n", 1)[0].split()
    assert len(line) >= 2, f"no HTTP answer at all: {data[:200]!r}"
    return int(line[1]), data.split(b"\r\n\r\n", 1)[-1]


@pytest.mark.parametrize("seed", SEEDS)
def test_no_client_input_gets_a_5xx_or_changes_the_store(api, seed):
    server, store = api
    before = snapshot(store)
    r = random.Random(seed)
    tcp = server.servers[0].server_address
    seen: dict[str, set[int]] = {}
    for i in range(REQUESTS_PER_SEED):
        gen = r.choice(GENERATORS)
        method, path, headers, body = gen(r)
        address = r.choice([tcp, server.unix_path])
        code, answer = send(address, method, path, headers, body)
        where = f"seed {seed} request {i} ({gen.__name__}): {method} {path[:120]} {headers!r:.200} {body[:200]!r}"
        assert code < 500, f"{where} -> {code} {answer[:300]!r}"
        assert not 200 <= code < 300 or method in ("GET", "HEAD", "OPTIONS"), f"{where} -> {code} {answer[:300]!r}"
        if code >= 400 and method != "HEAD" and answer:
            status = json.loads(answer)
            assert status["kind"] == "Status" and status["code"] == code and status["message"], where
        seen.setdefault(gen.__name__, set()).add(code)
    assert snapshot(store) == before, f"seed {seed}: the store changed"
    assert len(seen) >= len(GENERATORS) - 1, seen


def test_a_client_that_stops_sending_is_cut_off(api):
    """The read timeout: a request whose body never comes is answered 408
    and its connection closed after read_timeout; one whose headers never
    end is closed; neither holds its thread forever."""
    server, _ = api
    with socket.create_connection(server.servers[0].server_address, timeout=10) as s:
        s.sendall(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        answer = b""
        while chunk := s.recv(65536):     # ends: the server closes, within its 0.3 s read timeout
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408") and b'"reason": "Timeout"' in answer
    with socket.create_connection(server.servers[0].server_address, timeout=10) as s:
        s.sendall(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n")
        assert s.recv(1024) == b""
    done = threading.Event()
    with socket.create_connection(server.servers[0].server_address, timeout=10) as s:
        s.sendall(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.1 200")
        while s.recv(65536):              # rest of the answer, then the idle keep-alive is closed
            pass
        done.set()
    assert done.is_set()


def test_a_client_that_trickles_its_headers_is_cut_off_at_the_read_deadline(api):
    """Each byte within the read timeout, but the request never ends: the
    read deadline (1 s here) closes the connection; the loop gives up after
    25 bytes (5 s) if it never does."""
    server, _ = api
    closed = False
    with socket.create_connection(server.servers[0].server_address, timeout=10) as s:
        s.sendall(b"GET /api/v1/namespaces HTTP/1.1\r\n")
        for _ in range(25):
            try:
                s.sendall(b"X")
                threading.Event().wait(0.2)
                s.setblocking(False)
                try:
                    closed = s.recv(1024) == b""
                except BlockingIOError:
                    pass
                finally:
                    s.setblocking(True)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            if closed:
                break
    assert closed


def test_kind_and_version_are_checked_against_the_url(api):
    server, _ = api
    pod = dict(POD, metadata={"name": "wrong-url"})
    code, answer = send(server.unix_path, "POST", PATHS["services"], {}, json.dumps(pod).encode())
    assert code == 400 and json.loads(answer)["message"] == \
        'Pod in version "v1" cannot be handled as a Service: converting (v1.Pod) to (core.Service): unknown conversion'
    v2 = dict(POD, apiVersion="v2", metadata={"name": "v2"})
    code, answer = send(server.unix_path, "POST", PATHS["pods"], {}, json.dumps(v2).encode())
    assert code == 400 and json.loads(answer)["message"] == \
        'Pod in version "v2" cannot be handled as a Pod: no kind "Pod" is registered for version "v2" in scheme ' \
        '"pkg/api/legacyscheme/scheme.go:30"'
    code, answer = send(server.unix_path, "POST", PATHS["pods"], {}, b"[1,2,3]")
    assert code == 400 and "must be of type Pod" in json.loads(answer)["message"]
    bad = copy.deepcopy(POD)
    bad["metadata"]["name"] = "typed"
    bad["spec"]["containers"] = "nginx"
    code, answer = send(server.unix_path, "POST", PATHS["pods"], {}, json.dumps(bad).encode())
    assert code == 400 and json.loads(answer)["message"] == \
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field ' \
        'PodSpec.spec.containers of type []v1.Container'


def test_a_burst_of_concurrent_creates_on_the_unix_socket_all_succeed(tmp_path):
    """The Unix socket's listen backlog: 200 clients creating at once (the
    CLI's sockets have timeouts, so a full backlog is EAGAIN at once, as
    socketserver's default of 5 gave 44 of 500)."""
    from agent.api.client import Client

    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    server = APIServer(registry, [], str(tmp_path / "api.sock"))
    server.start()
    errors: list[str] = []
    start = threading.Barrier(200, timeout=30)

    def create(i: int) -> None:
        try:
            start.wait()
            Client(f"unix://{tmp_path / 'api.sock'}").create(
                "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"burst-{i}"}}, "default")
        except Exception as e:      # noqa: BLE001 - every failure is the finding
            errors.append(repr(e))
    try:
        threads = [threading.Thread(target=create, args=(i,)) for i in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        assert len(store.list("configmaps", "default")[0]) == 200
    finally:
        server.stop()
        store.close()
