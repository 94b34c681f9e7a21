"""Event expiry (agent/controllers/eventttl.py) against a real store, and
the --event-ttl duration flags of `nsplane up` and the control plane."""
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from agent.api.config import parse_duration
from agent.api.kinds import BY_RESOURCE
from agent.apiserver.registry import Registry
from agent.apiserver.store import Store
from agent.cli.main import parser
from agent.controllers import bootstrap
from agent.controllers.eventttl import EventTTLController, last_seen
from agent.controlplane import main as controlplane

EVENTS = BY_RESOURCE["events"]


def _ts(ago: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(name: str, ago: float) -> dict:
    """An Event as the store holds one written `ago` seconds ago."""
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "1",
                         "creationTimestamp": _ts(ago)},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web"},
            "reason": "Started", "message": "Started container web", "type": "Normal",
            "firstTimestamp": _ts(ago), "lastTimestamp": _ts(ago), "count": 1}


def _names(store) -> set[str]:
    return {e["metadata"]["name"] for e in store.list("events", "default")[0]}


def _until(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def cluster(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    registry = Registry(store)
    bootstrap.bootstrap(registry, "172.28.0.1", 6443)
    stop = threading.Event()
    yield store, registry, stop
    stop.set()
    store.close()


def test_events_expire_ttl_after_they_last_happened(cluster):
    store, registry, stop = cluster
    store.create("events", _event("old", ago=7200))      # written 2 h ago: past a 1 h TTL
    store.create("events", _event("recent", ago=60))
    store.create("events", _event("soon", ago=3598))     # expires in ~2 s
    EventTTLController(store, registry, ttl=3600).start(stop)
    _until(lambda: "old" not in _names(store))
    assert {"recent", "soon"} <= _names(store)
    _until(lambda: "soon" not in _names(store))
    assert _names(store) == {"recent"}


def test_a_new_occurrence_moves_the_expiry_later(cluster):
    store, registry, stop = cluster
    store.create("events", _event("repeated", ago=3598))
    EventTTLController(store, registry, ttl=3600).start(stop)
    ev = store.get("events", "default", "repeated")
    ev["lastTimestamp"], ev["count"] = _ts(0), 2                     # happened again just now
    registry.update(EVENTS, "default", "repeated", ev)
    time.sleep(3.5)                                                  # past the first expiry
    assert "repeated" in _names(store)


def test_an_event_created_now_about_something_old_lives_a_whole_ttl(cluster):
    """The TTL runs from the last write, as etcd's lease: an Event recorded
    now with an old lastTimestamp is kept."""
    store, registry, stop = cluster
    old = _event("late", ago=7200)
    del old["metadata"]["creationTimestamp"], old["metadata"]["uid"], old["metadata"]["resourceVersion"]
    registry.create(EVENTS, "default", old)
    EventTTLController(store, registry, ttl=3600).start(stop)
    time.sleep(1.5)
    assert "late" in _names(store)


def test_last_seen_takes_the_latest_of_the_event_times():
    ev = _event("x", ago=100)
    ev["eventTime"] = "2000-01-01T00:00:00.000000Z"
    ev["series"] = {"count": 3, "lastObservedTime": _ts(5)}
    assert abs(last_seen(ev) - (time.time() - 5)) < 2


def test_event_ttl_flags_take_go_durations():
    assert parse_duration("1h") == parse_duration("1h0m0s") == parse_duration("60m") == 3600
    assert parse_duration("1m30s") == 90 and parse_duration("0") == 0
    for bad in ("1", "1x", "h", "-1h", "1h 2m"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(bad)
    assert parser().parse_args(["up", "--event-ttl", "2h"]).event_ttl == "2h"
    with pytest.raises(SystemExit):
        controlplane.main(["--config", "/nonexistent", "--event-ttl", "soon"])
