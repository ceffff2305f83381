"""C9 :func:`claim_c9`: Theorem 1 holds numerically (our formalisation, docs/theorem1.md).

The verdict counts the pass/fail rows the theorem1 stage wrote per check; the gradient
flow per mask and the loss after one gradient step (:func:`one_step_ranges`) are
reported for information.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import tables as T
from ..evidence import Evidence
from ..figures import CLAIM_FIGURES
from ..formatting import fmt, fmt_sparsity
from ..paper import CLAIMS
from ..stats import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, combine, is_missing
from .parts import ClaimResult, Part, numbers_of


def one_step_ranges(one_step: pd.DataFrame) -> pd.DataFrame:
    """Per (method, sparsity): tested eta range, etas where L_IP <= L_SP, and the largest eta up to which it holds."""
    cols = ["method", "sparsity", "seed", "n_eta", "eta_min", "eta_max", "n_holds", "holds_min", "holds_max",
            "holds_up_to"]
    rows = []
    if one_step.empty:
        return pd.DataFrame(columns=cols)
    if "seed" not in one_step:
        one_step = one_step.assign(seed=np.nan)
    for (method, sparsity, seed), g in one_step.dropna(subset=["eta", "loss_sp", "loss_ip"]).groupby(
            ["method", "sparsity", "seed"], dropna=False):
        g = g.sort_values("eta")
        holds = (g["loss_ip"] <= g["loss_sp"]).to_numpy()
        etas = g["eta"].to_numpy()
        prefix = int(np.argmin(holds)) if not holds.all() else len(holds)
        rows.append({"method": method, "sparsity": sparsity, "seed": seed, "n_eta": len(etas), "eta_min": etas.min(),
                     "eta_max": etas.max(), "n_holds": int(holds.sum()),
                     "holds_min": etas[holds].min() if holds.any() else np.nan,
                     "holds_max": etas[holds].max() if holds.any() else np.nan,
                     "holds_up_to": etas[prefix - 1] if prefix > 0 else np.nan})
    return pd.DataFrame(rows, columns=cols)


def _gf_masks_info(t: T.Tables) -> str:
    gf = t.gf_masks.dropna(subset=["gf_sp", "gf_ip"])
    if gf.empty:
        return ""
    ratio = gf["gf_ip"] / gf["gf_sp"]
    return (f" Gradient flow per mask: GF_IP ≥ GF_SP on {int((gf['gf_ip'] >= gf['gf_sp']).sum())}/{len(gf)} masks, "
            f"GF_IP/GF_SP from {fmt(ratio.min(), 3)} to {fmt(ratio.max(), 3)}.")


def mask_label(method: str, sparsity) -> str:
    """Where a check ran: 'dense' for the dense network (it has no sparsity), else 'snip s=0.98'."""
    return str(method) if method == "dense" else f"{method} s={fmt_sparsity(sparsity)}"


#: per check whose pass/fail is a measured value under a tolerance: the quantities of its ``detail`` that must
#: each stay below it, what they measure, and the name of the library's tolerance in :mod:`ip.theory`
#: (docs/theorem1.md, check (e)); a check row's own ``value``/``reference``, where recorded, come first
TOLERANCES = {"fd_grad_fb": (("max_rel_error", "max_kink_rel_error"), "relative error", "FD_RTOL")}


def _detail_values(detail) -> dict[str, float]:
    """'ip:max_rel_error=3.73e-05; ip:num_checked=76' -> {'max_rel_error': 3.73e-05, 'num_checked': 76.0}."""
    out = {}
    for item in str(detail).split(";") if isinstance(detail, str) else []:
        name, _, value = item.strip().rpartition("=")
        try:
            out[name.rpartition(":")[2]] = float(value)
        except ValueError:
            continue
    return out


def measured_against_tolerance(row) -> tuple[float, float, str] | None:
    """(the value a check row measured, the tolerance it had to stay below, what the value is) for a check of
    :data:`TOLERANCES`, or from the row's own ``value`` and ``reference``; None where neither says."""
    value, reference = getattr(row, "value", None), getattr(row, "reference", None)
    known = TOLERANCES.get(row.check)
    what = known[1] if known else "value"
    if not is_missing(value) and not is_missing(reference):
        return float(value), float(reference), what
    if known is None:
        return None
    quantities, _, tolerance = known
    found = _detail_values(row.detail)
    values = [found[q] for q in quantities if q in found and not is_missing(found[q])]
    if not values:
        return None
    import ip.theory
    return max(values), float(found.get("rtol", getattr(ip.theory, tolerance))), what


def _failed_text(failed: pd.DataFrame) -> tuple[str, str]:
    """One check's failed rows: where (e.g. 'dense, synflow s=0.98'), and each measured value against its tolerance
    where the check has one (e.g. 'relative error 3.7e-05, 4.7e-04 against 1e-05'; '' where it has none)."""
    rows = list(failed.itertuples())
    where = ", ".join(mask_label(r.method, r.sparsity) for r in rows)
    measured = [measured_against_tolerance(r) for r in rows]
    if not measured or any(m is None for m in measured):
        return where, ""
    tolerances = {m[1] for m in measured}
    values = ", ".join(f"{m[0]:.1e}" + ("" if len(tolerances) == 1 else f" against {m[1]:g}") for m in measured)
    return where, f"{measured[0][2]} {values}" + (f" against {tolerances.pop():g}" if len(tolerances) == 1 else "")


def _check_parts(checks: pd.DataFrame) -> list[Part]:
    """One part per check name: supported if every row passed, not supported if any failed."""
    parts = []
    for c in T.check_counts(checks).itertuples():
        v = NOT_SUPPORTED if c.failed else (INCONCLUSIVE if c.unknown else SUPPORTED)
        note = f"{c.check}: {c.passed}/{c.n} passed" + (f", {c.unknown} without a pass/fail" if c.unknown else "")
        if c.failed:
            failed = checks[(checks["check"] == c.check) & (checks["passed"] == False)]  # noqa: E712
            where, measured = _failed_text(failed)
            note += f" (failed: {where}" + (f"; {measured}" if measured else "") + ")"
        numbers = {"n": int(c.n), "passed": int(c.passed), "failed": int(c.failed)}
        parts.append(Part(c.check, v, numbers, None, note))
    return parts


def claim_c9(ev: Evidence) -> ClaimResult:
    """C9: the pass/fail counts of the numerical checks of Theorem 1 (STUDY_SPEC section 4); supported if every
    check passed.  The one-step loss comparison is reported beside, for information."""
    t = ev.tables
    parts = _check_parts(t.checks)
    ranges = one_step_ranges(t.one_step)
    range_txt = []
    for r in ranges.itertuples():
        where = (f"L_IP ≤ L_SP for {r.n_holds}/{r.n_eta} η; for all η ≤ {r.holds_up_to:g}"
                 if not is_missing(r.holds_up_to) else f"L_IP ≤ L_SP for {r.n_holds}/{r.n_eta} η, not at the smallest")
        range_txt.append(f"{mask_label(r.method, r.sparsity)}: {where} (tested η {r.eta_min:g}–{r.eta_max:g})")
    verdict = combine(p.verdict for p in parts)
    summary = ("Theorem 1 as formalised in docs/theorem1.md (the paper's statement was not available). "
               + (f"Checks: {sum(p.numbers['passed'] for p in parts)}/{sum(p.numbers['n'] for p in parts)} passed."
                  if parts else f"Checks: missing ({t.path_of('checks')}).")
               + _gf_masks_info(t)
               + " One gradient step (information; the statement holds up to O(η²)): "
               + ("; ".join(range_txt) if range_txt else f"missing ({t.path_of('one_step')})") + ".")
    expl = summary + (" Per check: " + "; ".join(p.note for p in parts) + "." if parts else "")
    numbers = numbers_of(parts)
    for r in ranges.itertuples():
        numbers[f"one_step.{r.method}.{fmt_sparsity(r.sparsity)}.holds_up_to"] = r.holds_up_to
    n_total = sum(p.numbers["n"] for p in parts)
    n_pass = sum(p.numbers["passed"] for p in parts)
    key = (f"{n_pass}/{n_total} checks passed" if parts else "missing") + (
        "; one step: L_IP ≤ L_SP for " + ", ".join(
            f"{mask_label(r.method, r.sparsity)} η ≤ {r.holds_up_to:g}" if not is_missing(r.holds_up_to)
            else f"{mask_label(r.method, r.sparsity)} none from the smallest η" for r in ranges.itertuples())
        if len(ranges) else "")
    result = ClaimResult("C9", CLAIMS["C9"], verdict, numbers, CLAIM_FIGURES["C9"], expl, parts, key, summary)
    result.brief = _brief(t.checks, parts) if parts else "missing"
    return result


def _brief(checks: pd.DataFrame, parts) -> str:
    """C9 in the claims table: how many checks passed; each failed check where it failed, with its measured value
    against its tolerance; how the other checks did."""
    n_total, n_pass = sum(p.numbers["n"] for p in parts), sum(p.numbers["passed"] for p in parts)
    failed = checks[checks["passed"] == False] if len(checks) else checks  # noqa: E712
    bits = [f"{n_pass}/{n_total} checks passed"]
    for check, g in failed.groupby("check", sort=True):
        where, measured = _failed_text(g)
        bits.append(f"{check} failed at {where}" + (f" ({measured})" if measured else ""))
    others = [p for p in parts if not p.numbers["failed"]]
    if len(failed) and others:
        n, ok = sum(p.numbers["n"] for p in others), sum(p.numbers["passed"] for p in others)
        bits.append(f"every other check passed ({ok}/{n})" if ok == n else f"the other checks: {ok}/{n} passed")
    return "; ".join(bits)
