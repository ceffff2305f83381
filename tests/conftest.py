import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHONHASHSEED", "0")
# torch.compile's kernels from a cache of this run only (the subprocesses' too): a cache left in
# /tmp by another configuration of the same machine (e.g. an ATen CPU capability forced to AVX2
# on an AVX-512 processor) gives compiled kernels that do not fit it (NaN losses)
_INDUCTOR_CACHE = tempfile.mkdtemp(prefix="ip-tests-inductor-")
os.environ["TORCHINDUCTOR_CACHE_DIR"] = _INDUCTOR_CACHE
atexit.register(shutil.rmtree, _INDUCTOR_CACHE, ignore_errors=True)
# tiny networks run fastest on one thread, and a shared 2-core machine thrashes with more
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield


@pytest.fixture
def tiny_resnet():
    from ip.models import get_model
    torch.manual_seed(0)
    return get_model("resnet20", num_classes=10, in_channels=1, width=4)


# the longest files (each a `dvc repro` of a whole tiny study), then the other slow ones
LONGEST = ("test_pipeline_e2e.py", "test_scaling.py", "test_faults.py")


def pytest_collection_modifyitems(session, config, items):
    """The longest files first: spread over workers by file (``make test``: ``-n 2 --dist
    loadfile``), they start at once and the short files fill in around them, instead of
    one long file running alone at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item):
        name = item.path.name
        return (LONGEST.index(name) if name in LONGEST else len(LONGEST) + (item.path not in slow_files))
    items.sort(key=rank)
