"""The step-time benchmark's operator breakdown (benchmarks/step_time.py --breakdown)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import step_time  # noqa: E402


def test_op_shares_sum_to_one_and_put_each_operator_in_its_family():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3)
    x = torch.randn(4, 3, 16, 16)

    def step():
        conv.zero_grad(set_to_none=True)
        torch.relu(conv(x)).sum().backward()

    shares = step_time.op_shares(step, steps=2)
    assert list(shares) == ["convolution", "batch norm", "relu", "other"]
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["batch norm"] == 0.0          # no batch norm in this step
    assert shares["convolution"] > 0.0 and shares["relu"] > 0.0 and shares["other"] > 0.0   # sum, fills
