"""The part of Kubernetes' e2e framework (test/e2e/framework) the ported
conformance tests stand on, over real kubectl: a namespace per test
(generated from the spec's base name, deleted afterwards), typed-client-like
create / get / list / update / delete that return API objects as dicts, and
`poll` with wait.PollUntilContextTimeout's semantics (a condition may
return False to retry, True to stop, or raise `PollError` to fail at once).

The tests themselves keep upstream's objects, checks and timeouts; this
module only stands in for client-go and Gomega.
"""
from __future__ import annotations

import json
import random
import time

POLL = 2.0                      # framework.Poll


class PollError(Exception):
    """A condition's error: polling stops and the test fails with it."""


def poll(interval: float, timeout: float, condition, *, immediate: bool = True, what: str = "condition") -> None:
    """wait.PollUntilContextTimeout(ctx, interval, timeout, immediate, condition)."""
    deadline = time.monotonic() + timeout
    if not immediate:
        time.sleep(interval)
    while True:
        if condition():
            return
        if time.monotonic() + interval > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class Framework:
    """framework.Framework: `ns` is this test's namespace."""

    def __init__(self, cluster, base_name: str):
        self.cluster = cluster
        suffix = "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        self.ns = f"{base_name}-{suffix}"
        self.cluster.kubectl("create", "namespace", self.ns)

    def cleanup(self) -> None:
        self.cluster.kubectl("delete", "namespace", self.ns, "--wait=false", check=False)

    # ---- client -----------------------------------------------------------
    def kubectl(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60):
        return self.cluster.kubectl("-n", self.ns, *args, check=check, input=input, timeout=timeout)

    def create(self, obj: dict) -> dict:
        return json.loads(self.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(obj)).stdout)

    def update(self, obj: dict) -> dict:
        """Update (PUT) of `obj` as given: without a resourceVersion it is unconditional."""
        return json.loads(self.kubectl("replace", "-f", "-", "-o", "json", input=json.dumps(obj)).stdout)

    def get(self, resource: str, name: str) -> dict:
        return json.loads(self.kubectl("get", resource, name, "-o", "json").stdout)

    def list(self, resource: str, label_selector: str = "") -> list[dict]:
        args = ["get", resource, "-o", "json"] + (["-l", label_selector] if label_selector else [])
        return json.loads(self.kubectl(*args).stdout)["items"]

    def delete(self, resource: str, name: str) -> None:
        self.kubectl("delete", resource, name, "--wait=false")
