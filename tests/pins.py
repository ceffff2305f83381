"""The pinned tiny study: its params, and how a result is compared with its pin.

Floating-point results of a training run are not portable bit for bit: another kernel,
instruction set, thread count or library build changes the order of sums, and training
amplifies a one-ulp difference (in float32, into a different accuracy after a few steps).
So the pinned study trains in float64 (``train.precision: fp64``), where round-off starts
at 1.1e-16 and stays far below any real change of behaviour, and every pinned float is
compared with a relative tolerance:

- integers, booleans, strings, and floats that are ratios of integers fixed by the budget
  (``sparsity``, ``sparsity_actual``): exact;
- every other float (losses, accuracies, gaps, gradient flows, Hessian estimates, filter
  densities): ``|got - pinned| <= RTOL * |pinned| + ATOL``.

RTOL = 1e-5 and ATOL = 1e-8 come from measuring this study (tests/test_pins.py checks
both directions on every run of the suite).  ``tolerance used`` below is
max |got - pinned| / (RTOL |pinned| + ATOL) over a run's floats (1 = at the limit):

- round-off only: ``train.threads`` 2 instead of 1 uses at most 1.7e-3 of the tolerance
  (four runs; the largest relative changes are 1.8e-8 in ``gap_loss``, a difference of
  two losses, 1.1e-9 in ``gf_final`` and 7e-11 in the losses); evaluating in batches of
  100 instead of 1000 at most 1e-8.  Another machine reorders sums the same way, so the
  margin against it is some 600x;
- real changes: another data-order seed, one training step less, or BN recalibration
  switched off use 2.4e4 to 8e5 times the tolerance; another tie-break in the per-layer
  counts changes the mask digest.

The Hessian's top eigenvalue is computed to ``hessian_tol = 1e-8`` here: ARPACK stops once
a Ritz residual is below ``tol * |theta|``, so at the study's 0.01 the value depends on how
many restarts round-off lets it take (an AVX2 machine gave 2.3e-5 relative away from the pin
an AVX-512 machine wrote, beyond RTOL; the values at 0.01 were up to 8.5e-5 away from the
converged ones); converged, it moves with round-off only.

In float32 the same study cannot be pinned: 1 vs 2 threads moves the test accuracy by up
to 14 % and the final gradient flow by up to 46 % (relative).  An accuracy over 256 test
images moves in steps of 1/256, so in float64 it is in effect compared exactly: a
prediction flips only if a logit margin is below the round-off of the logits.

``IP_PINS_EXACT=1`` compares bit for bit instead (tolerances 0): for a refactor that must
not change a single bit, checked on the machine that wrote the pins.
``IP_PIN_THREADS=N`` runs the pinned study with ``train.threads: N`` (default 1), to check
that the pins hold under another reduction order: ``IP_PIN_THREADS=2 make test``.
"""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import torch
import yaml

from ip.experiment import is_timing

ROOT = Path(__file__).resolve().parents[1]
PINNED = ROOT / "tests" / "data" / "tiny_study"
RTOL, ATOL = 1e-5, 1e-8
EXACT_FLOATS = ("sparsity", "sparsity_actual")


def exact() -> bool:
    return os.environ.get("IP_PINS_EXACT") == "1"


def pin_threads() -> int:
    return int(os.environ.get("IP_PIN_THREADS", "1"))


def pinned_params(threads: int | None = None) -> dict:
    """The pinned study: the project's params.yaml made tiny, in float64."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p.update(sparsity=0.9, seeds=[0], methods=["snip", "rigl"], reprs=["sp", "ip"])
    p["data"].update(train_subset=256, test_subset=256, metric_samples=32, eval_samples=64)
    p["model"].update(width=4)
    # one worker: a stage's runs in its own process (a pool only pays for itself on real runs)
    p["train"].update(epochs=1, batch_size=64, threads=pin_threads() if threads is None else threads, workers=1,
                      precision="fp64")
    p["prune"].update(batch_size=64)
    p["prune"]["lt"].update(rewind_step=0)
    p["prune"]["dst"].update(interval=2)
    # Hessian spectra of SNIP's runs only (the stage's path is the same for every method; a spectrum
    # to tol 1e-8 in float64 is the stage's longest part)
    p["trainability"].update(seeds=[0], hessian_methods=["snip"], samples=8, hessian_top_k=1, hessian_tol=1e-8,
                             hutchinson_probes=2, slq_probes=1, slq_steps=4)
    p["theorem1"].update(etas=[0.001, 0.01], fd_samples=8, fd_entries_per_fb=2)
    p["sweep"].update(sparsities=[0.5], methods=["snip"], seeds=None)
    p["ablation"].update(method="snip", fb_inits=["spatial", "dct"], shares=["layer"], fair_budget=False, seeds=None)
    p["controls"]["shuffle"].update(methods=["snip"], seeds=None)
    # two scales: a choice is always on an edge, so the grid grows once (max_growth 1)
    p["controls"]["lr"].update(methods=["snip"], seeds=None, lr_scales=[0.5, 1.0], validation_samples=64,
                               max_growth=1)
    p["axis"].update(epochs=[2], seeds=[0], methods=["snip"], dense_epochs=[2],
                     published={"epochs": 2, "methods": ["rigl"], "prune": {"rigl": {"interval": 3}}})
    return p


def run_file(path) -> tuple[dict, dict]:
    """(state dict, masks) of a run's sparse model file (start.safetensors, final.safetensors)."""
    import ip
    model, masks = ip.load_sparse(path)
    return model.state_dict(), masks


def mask_digest(masks: dict[str, torch.Tensor]) -> str:
    """sha256 of a mask set (names and bits, in name order): equal iff the masks are equal."""
    h = hashlib.sha256()
    for name in sorted(masks):
        h.update(name.encode())
        h.update(masks[name].to(torch.bool).cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def typed(text: str):
    """A CSV cell as the value it was written from: None, int, float or str."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _missing(value) -> bool:
    return value is None or isinstance(value, float) and math.isnan(value)


def value_differs(key: str, got, pinned) -> bool:
    """Whether ``got`` differs from ``pinned`` under the rule of this module."""
    if _missing(got) or _missing(pinned):
        return not (_missing(got) and _missing(pinned))
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (got, pinned))
    if not numbers or isinstance(got, int) and isinstance(pinned, int):
        return got != pinned
    if exact() or key in EXACT_FLOATS:
        return got != pinned
    return abs(got - pinned) > RTOL * abs(pinned) + ATOL


def differences(got: dict, pinned: dict) -> list[str]:
    """One line per key whose value differs from the pin (timing fields aside)."""
    out = []
    for key in sorted(k for k in set(got) | set(pinned) if not is_timing(k)):
        if key not in got or key not in pinned:
            out.append(f"{key}: only in {'the result' if key in got else 'the pin'}")
        elif value_differs(key, got[key], pinned[key]):
            out.append(f"{key}: {got[key]!r} != pinned {pinned[key]!r}")
    return out


def tolerance_used(got: dict, pinned: dict) -> float:
    """max over the compared floats of |got - pinned| / (RTOL |pinned| + ATOL): below 1 passes.

    Mask digests and integers are not in it (they are compared exactly)."""
    worst = 0.0
    for key in set(got) & set(pinned) - set(EXACT_FLOATS):
        if is_timing(key):
            continue
        a, b = got[key], pinned[key]
        if not all(isinstance(v, float) for v in (a, b)) or math.isnan(a) or math.isnan(b):
            continue
        worst = max(worst, abs(a - b) / (RTOL * abs(b) + ATOL))
    return worst
