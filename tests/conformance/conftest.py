"""One throwaway cluster (with cluster DNS) for every conformance port, and
a fresh namespace per test, as the e2e framework gives each spec."""
import shutil

import pytest

from tests.conformance.framework import Framework
from tests.integration.cluster import ThrowawayCluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed on this machine")
    with ThrowawayCluster(str(tmp_path_factory.mktemp("conformance"))) as tc:
        yield tc


@pytest.fixture
def framework(request, cluster):
    """framework.NewDefaultFramework(<base name>): the module's BASE_NAME."""
    f = Framework(cluster, getattr(request.module, "BASE_NAME", "e2e"))
    try:
        yield f
    finally:
        f.cleanup()
