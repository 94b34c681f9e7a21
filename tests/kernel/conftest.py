"""Markers the kernel tests use beyond pyproject's."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: takes seconds (OOM kill, local registry); CI may run these apart")
