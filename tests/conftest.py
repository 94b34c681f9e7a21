"""Shared test setup: kernel and integration tests need root and skip
cleanly without it."""
import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: creates namespaces, veths and iptables rules")
    for item in items:
        if "kernel" in item.keywords or "integration" in item.keywords:
            item.add_marker(skip)
