import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHONHASHSEED", "0")
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
