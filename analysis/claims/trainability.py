"""How IP trains and generalises.

- C6 :func:`claim_c6` IP trains better: more gradient flow during training and a lower final
  training loss than SP (Hessian spectra and shared-coordinate GF alongside, for information)
- C7 :func:`claim_c7` at the lowest sweep sparsity IP generalises better (smaller
  train − test accuracy gap)
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import tables as T
from ..evidence import Evidence, Runs
from ..figures import CLAIM_FIGURES
from ..formatting import Scale, fmt, fmt_sparsity, holm_gap
from ..paper import CLAIMS
from ..stats import NOT_TESTED, combine
from .parts import ClaimResult, Part, decide_parts, numbers_of, per_method_parts, tally, verdicts_by_group
from .schedules import mark_squeezed

TRAINING, FINAL_LOSS = "gradient flow during training", "final training loss"


def _hessian_info(t: T.Tables) -> str:
    """Top Hessian eigenvalue and trace, IP/SP, median over methods (information, not part of the verdict)."""
    h = t.hessian.dropna(subset=["value"])
    bits = []
    for kind, select in (("top eigenvalue", (h["kind"] == "eigenvalue") & (h["rank"] == 1)),
                         ("trace", h["kind"] == "trace")):
        for when in ("init", "final"):
            rows = h[select & (h["when"] == when)]
            means = rows.groupby(["method", "repr"])["value"].mean().unstack() if len(rows) else pd.DataFrame()
            if {"sp", "ip"} <= set(means.columns):
                ratio = (means["ip"] / means["sp"]).dropna()
                if len(ratio):
                    bits.append(f"{kind} {'at init' if when == 'init' else 'after training'} IP/SP median "
                                f"{fmt(ratio.median(), 2)} over {len(ratio)} method{'s' if len(ratio) != 1 else ''}")
    if not bits:
        return "Hessian spectra: missing."
    return "Hessian (information, fig. 5): " + "; ".join(bits) + "." + _negative_curvature(t.density)


def spectrum_summary(grid: np.ndarray, density: np.ndarray, floor: float = 1e-3) -> tuple[float, float]:
    """(the mean eigenvalue of one SLQ spectral density, its first moment: trace / dimension; the lowest
    eigenvalue where the density is at least ``floor`` × its peak), on an evenly or unevenly spaced grid."""
    order = np.argsort(grid)
    grid, density = grid[order], np.clip(density[order], 0.0, None)
    weights = np.gradient(grid) * density if grid.size > 1 else density
    total = float(weights.sum())
    if total <= 0:
        return float("nan"), float("nan")
    seen = grid[density >= floor * density.max()]
    return float((weights * grid).sum() / total), float(seen.min()) if seen.size else float("nan")


def _negative_curvature(density: pd.DataFrame) -> str:
    """Why a Hutchinson trace can lie far below −(top eigenvalue): the SLQ density's mass below 0."""
    if not has_density(density):
        return ""
    bits = []
    for when, label in (("init", "at the start of sparse training"), ("final", "after training")):
        rows = density[density["when"] == when]
        stats = [spectrum_summary(g["grid"].to_numpy(dtype=float), g["density"].to_numpy(dtype=float))
                 for _, g in rows.groupby(["method", "repr", "seed"])]
        stats = [s for s in stats if np.isfinite(s[0])]
        if stats:
            mean = np.median([s[0] for s in stats])
            lowest = np.median([s[1] for s in stats])
            bits.append(f"{label} the SLQ density's mean eigenvalue is {fmt(mean, 3)} and it reaches down to "
                        f"about {fmt(lowest, 3)} (medians over {len(stats)} runs)")
    if not bits:
        return ""
    return (" The top eigenvalue is the largest one, not the largest in magnitude, while the trace sums all of "
            "them (the dimension times the density's mean eigenvalue): " + "; ".join(bits) + ". A mean below 0 "
            "is the stochastic-Lanczos side of a negative Hutchinson trace: many directions of negative curvature.")


def has_density(density: pd.DataFrame) -> bool:
    return len(density) > 0 and {"grid", "density", "when"} <= set(density.columns) and \
        density["density"].notna().any()


def _median_gf_ratio(parts) -> str:
    """Median over methods of mean GF_IP / mean GF_SP, for the claims table."""
    vals = [p.comparison.a.mean / p.comparison.b.mean for p in parts
            if p.comparison is not None and p.comparison.a.n and p.comparison.b.n and p.comparison.b.mean]
    if not vals:
        return "missing"
    return f"median IP/SP {fmt(np.median(vals), 2)} over {len(vals)} method{'s' if len(vals) != 1 else ''}"


def rewind_methods(runs: pd.DataFrame) -> list[str]:
    """Methods whose training starts at a rewind point (``gf_rewind``, no ``gf_init``): LT."""
    return T.ordered_methods(runs.loc[T.starts_at_rewind(runs), "method"].dropna().unique())


def _shared_gf_note(train: pd.DataFrame, methods) -> str:
    """Mean GF on the coordinates SP and IP share (masked w / λ), IP/SP per method: information."""
    if "gf_shared" not in train or not train["gf_shared"].notna().any():
        return ""
    means = train.groupby(["method", "repr"])["gf_shared"].mean()
    bits = [f"{m} {fmt(means[(m, 'ip')] / means[(m, 'sp')], 2)}" for m in methods
            if (m, "sp") in means and (m, "ip") in means and means[(m, "sp")]]
    return (" Mean GF over training on the coordinates SP and IP share (masked w / λ), IP/SP, for information: "
            + "; ".join(bits) + ".") if bits else ""


def training_means(ev: Evidence) -> Runs:
    """Per main run at the headline sparsity: the mean GF over the training epochs (all trainable coordinates,
    and the shared ones when logged), with the run's connectivity flag from the summary."""
    history = ev.tables.history
    keys = ["method", "repr", "seed"]
    flags = ev.headline.frame[keys + ["disconnected"]].drop_duplicates(keys)
    train = T.history_means(history, "gf")
    if len(train) and "gf_shared" in history:
        train = train.merge(T.history_means(history, "gf_shared"), on=keys, how="left")
    return Runs.of(train.merge(flags, on=keys, how="left"))


def gf_epochs(history) -> int:
    """How many epoch ends the history logs GF at (epoch 0, initialisation, is not averaged): the GF of C6's
    "during training" is the mean over these, so with one it is the GF at the end of training."""
    if history is None or "epoch" not in history or not len(history):
        return 0
    logged = history[history["gf"].notna()] if "gf" in history else history.iloc[0:0]
    return int(logged.loc[logged["epoch"] > 0, "epoch"].nunique())


def _epochs_note(history) -> str:
    """What "mean over the training epochs" averages here: GF is logged at the end of each epoch, so a one-epoch
    study's mean is the GF at the end of training."""
    epochs = gf_epochs(history)
    if not epochs:
        return ""
    if epochs == 1:
        return (" (one epoch here: the mean is the GF at the end of training, where the cosine schedule has "
                "brought the learning rate to about 0; a larger gradient there may also mean a run further from a "
                "stationary point, so the final training loss is read beside it)")
    return f" ({epochs} epoch ends)"


def claim_c6(ev: Evidence) -> ClaimResult:
    """C6 (STUDY_SPEC section 5): for each sparse method, the paired IP−SP differences of the mean gradient flow
    over the training epochs (all trainable coordinates; above 0) and of the final training loss (below 0).

    At initialisation GF_IP ≥ GF_SP is Theorem 1 (an identity for the spatial FB init): it is checked
    in C9, not tested here.  The GF on the shared coordinates is printed beside, for information.
    """
    train = training_means(ev)
    pending = per_method_parts(train, "gf", Scale(1.0, "", 2, sci=True), "mean GF over training epochs",
                               group=TRAINING, label_suffix=" GF")
    pending += per_method_parts(ev.headline, "train_loss", Scale(1.0, "", 3), "final training loss",
                                higher_is_better=False, better="lower", group=FINAL_LOSS, label_suffix=" loss")
    parts = decide_parts(pending, ev.alpha)
    mark_squeezed(parts, ev.tables.meta, ev.headline.frame)
    if not len(train.frame):
        parts.append(Part("training", NOT_TESTED, {}, None,
                          f"GF during training: missing ({ev.path_of('history')})", TRAINING))
    verdict = combine(p.verdict for p in parts)
    gf_parts = [p for p in parts if p.group == TRAINING]
    loss_parts = [p for p in parts if p.group == FINAL_LOSS]
    summary = ("Per method: gradient flow ‖g‖² over all trainable unpruned coordinates (IP: λ and F), mean over the "
               f"training epochs{_epochs_note(ev.tables.history)}, higher is better; and the final training loss, "
               f"lower is better; parts (method × measure): {tally(parts)}. GF at initialisation is Theorem 1 "
               "(checked in C9), not a part here."
               + _shared_gf_note(train.frame, ev.methods) + " " + _hessian_info(ev.tables))
    expl = (summary + " Gradient flow: " + ("; ".join(p.note for p in gf_parts) or "missing")
            + ". Final training loss: " + ("; ".join(p.note for p in loss_parts) or "missing") + ".")
    key = f"GF over training: {_median_gf_ratio(gf_parts)} ({tally(gf_parts, marked=True) or 'missing'}); final " \
          f"train loss: {tally(loss_parts, marked=True) or 'missing'}"
    return ClaimResult("C6", CLAIMS["C6"], verdict, numbers_of(parts), CLAIM_FIGURES["C6"], expl, parts, key,
                       summary, verdicts_by_group(parts, (TRAINING, FINAL_LOSS)))


def claim_c7(ev: Evidence) -> ClaimResult:
    """C7: for each sweep method at the lowest sweep sparsity, the paired IP−SP difference of the train − test
    accuracy gap (below 0: IP generalises better)."""
    sweep = ev.tables.sweep
    sweep = sweep[sweep["method"] != "dense"].dropna(subset=["sparsity"])
    if sweep.empty:
        return ClaimResult("C7", CLAIMS["C7"], NOT_TESTED, {}, CLAIM_FIGURES["C7"],
                           f"missing: no sweep runs ({ev.path_of('sweep')})", [], "missing")
    lowest = float(sweep["sparsity"].min())
    runs = Runs.of(T.at_sparsity(sweep, lowest, keep_dense=False))
    scale = Scale(T.percent_scale(runs.frame["train_acc"], runs.frame["test_acc"]), " pp", 2)
    parts = decide_parts(per_method_parts(runs, "gap_acc", scale, "gap train−test acc.",
                                          higher_is_better=False, better="smaller gap"), ev.alpha)
    mark_squeezed(parts, ev.tables.meta, sweep)
    verdict = combine(p.verdict for p in parts)
    loss_txt = "; ".join(f"{m} IP−SP {Scale(1, '', 3).with_ci(runs.comparison(m, 'gap_loss', False).diff)}"
                         for m in runs.methods)
    summary = (f"Generalisation gap (train acc − test acc) at the lowest sweep sparsity {fmt_sparsity(lowest)}, "
               f"smaller is better (the claimed side of IP−SP is below 0); methods: {tally(parts)}. Loss gap "
               f"(test − train loss) IP−SP, for information: {loss_txt or 'missing'}.")
    expl = summary + " Per method: " + "; ".join(p.note for p in parts) + "."
    key = "; ".join(f"{p.marked} {scale.with_ci(p.comparison.diff)}"
                    + (f" ({gap})" if (gap := holm_gap(p.comparison)) else "")
                    for p in parts if p.comparison) or "missing"
    numbers = {"sparsity": lowest, **numbers_of(parts)}
    return ClaimResult("C7", CLAIMS["C7"], verdict, numbers, CLAIM_FIGURES["C7"], expl, parts,
                       f"IP−SP acc. gap at s={fmt_sparsity(lowest)}: {key}", summary)
