"""Stage `init`: the dense initial weights of every seed, shared by the SP and IP runs of
that seed so that every comparison is paired."""
from __future__ import annotations

import torch

from ip.experiment import initial_state

from .common import INIT_DIR, prepared, setup, stage


@stage
def main() -> None:
    p = setup()
    data = prepared()
    INIT_DIR.mkdir(parents=True, exist_ok=True)
    seeds = sorted(set(p.seeds) | set(p.sweep.seeds or []) | set(p.ablation.seeds or [])
                   | set(p.axis.seeds if p.axis.epochs else []))
    for seed in seeds:
        state = initial_state(p.model.name, p.model.width, data.num_classes, data.input_shape[0], seed)
        torch.save(state, INIT_DIR / f"s{seed}.pt")
    print(f"initial weights for seeds {seeds}")


if __name__ == "__main__":
    main()
