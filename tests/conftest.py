"""Shared test setup: kernel and integration tests need root and skip
cleanly without it; real kubectl keeps its discovery cache in a directory
of this run's (KUBECACHEDIR), never the user's ~/.kube/cache, where another
run's clusters at the same address (another version, other CRDs) would
answer for ours. ThrowawayCluster gives each cluster a cache of its own."""
import os
import shutil
import tempfile

import pytest


@pytest.fixture(scope="session", autouse=True)
def _kubectl_cache_dir():
    path = tempfile.mkdtemp(prefix="nsplane-kubecache-")
    old = os.environ.get("KUBECACHEDIR")
    os.environ["KUBECACHEDIR"] = path
    yield
    if old is None:
        os.environ.pop("KUBECACHEDIR", None)
    else:
        os.environ["KUBECACHEDIR"] = old
    shutil.rmtree(path, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: creates namespaces, veths and iptables rules")
    for item in items:
        if "kernel" in item.keywords or "integration" in item.keywords:
            item.add_marker(skip)
