"""The controls' claims (beyond the paper: STUDY_SPEC section 6), decided by the same rule.

- K1 :func:`claim_k1` IP's advantage survives mask shuffling: for each shuffled method, the
  paired IP − SP test-accuracy difference of the runs whose masks were shuffled within each
  layer (Frankle et al. 2021) lies above 0
- K2 :func:`claim_k2` IP's advantage survives learning-rate selection: for each method of the
  learning-rate control, IP at the scale its validation accuracy chose against SP at the
  scale its own validation accuracy chose, paired over seeds, lies above 0; a choice on an edge
  of the grid run is not bracketed, and the part and the verdict say so

Beside each verdict, for information: shuffled − unshuffled per method and representation,
IP − SP with the runs' own masks on the same seeds, and IP − SP at each learning rate.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import controls as C
from .. import tables as T
from ..evidence import Evidence
from ..figures import CONTROL_FIGURES
from ..formatting import difference_scale, fmt_sparsity, side_label, verdict_label
from ..stats import NOT_TESTED, combine
from .parts import GRID_EDGE_MARK, ClaimResult, Pending, decide_parts, numbers_of, tally

CONTROL_CLAIMS = {
    "K1": "IP's advantage survives mask shuffling (kept positions permuted within each layer)",
    "K2": "IP's advantage survives learning-rate selection (each representation at its best learning rate)",
}


def _missing(claim_id: str, why: str) -> ClaimResult:
    return ClaimResult(claim_id, CONTROL_CLAIMS[claim_id], NOT_TESTED, {}, CONTROL_FIGURES[claim_id], why,
                       key_numbers="missing", summary=why)


def _result(claim_id: str, parts, summary: str, ds, what: str) -> ClaimResult:
    """The claim's result from its decided parts (``ds``: how differences are printed; ``what``: what the key
    numbers are)."""
    key = "; ".join(f"{p.marked} {ds.with_ci(p.comparison.diff)} ({verdict_label(p.comparison)})" for p in parts)
    return ClaimResult(claim_id, CONTROL_CLAIMS[claim_id], combine(p.verdict for p in parts), numbers_of(parts),
                       CONTROL_FIGURES[claim_id], summary + " Per method: " + "; ".join(p.note for p in parts) + ".",
                       parts, f"{what}: {key}", summary)


def claim_k1(ev: Evidence) -> ClaimResult:
    """K1: for each method of the shuffle control, IP − SP test accuracy with shuffled masks, paired by seed."""
    table = ev.tables.controls
    methods = C.methods_of(table, "shuffle")
    if not methods:
        return _missing("K1", f"not tested here: no shuffle-control runs in {ev.path_of('controls')}")
    scale = ev.scale
    pending = [Pending(m, C.shuffle_advantage(table, m, shuffled=True).comparison(), scale,
                       f"{m}, shuffled masks, test accuracy") for m in methods]
    parts = decide_parts(pending, ev.alpha)
    ds = difference_scale(scale)
    info = []
    for m in methods:
        own = C.shuffle_advantage(table, m, shuffled=False).comparison().diff
        effects = "; ".join(f"{rep.upper()} {ds.with_ci(C.shuffle_effect(table, m, rep).comparison().diff)}"
                            for rep in sorted(set(table.loc[(table['control'] == 'shuffle')
                                                            & (table['method'] == m), 'repr']), reverse=True))
        info.append(f"{m}: IP−SP with its own masks {ds.with_ci(own)}; shuffled − own masks: {effects}")
    sparsity = table.loc[table["control"] == "shuffle", "sparsity"].dropna()
    at = f" at sparsity {fmt_sparsity(float(sparsity.iloc[0]))}" if len(sparsity) else ""
    summary = (f"Masks of {', '.join(methods)}{at} with the kept positions permuted uniformly within each layer "
               f"(per-layer counts unchanged), trained like the main runs; IP−SP test accuracy of the shuffled runs, "
               f"paired over seeds (parts: {tally(parts)}). For information (not part of the verdict): "
               + ". ".join(info) + ".")
    return _result("K1", parts, summary, ds, "IP−SP test acc., shuffled masks")


def _grid_text(scales: list[float]) -> str:
    return f"{scales[0]:g}–{scales[-1]:g}" if scales else "empty"


def _scales_text(scales) -> str:
    return "×" + ", ×".join(f"{s:g}" for s in scales) if len(scales) else "none"


@dataclass(frozen=True)
class LrGrid:
    """The learning-rate grid one method's control ran, as the run recorded it: every scale of its runs (the
    table), and from the params snapshot of meta.json the grid it was set to (``controls.lr.lr_scales``) and
    how often it could grow beyond an edge (``controls.lr.max_growth``; None: the snapshot has no growth rule,
    the grid was fixed)."""
    scales: tuple          # every scale run, ascending
    set_to: tuple | None   # the grid of the snapshot (None: the snapshot does not record it)
    max_growth: int | None

    @classmethod
    def of(cls, table, method: str, meta: dict) -> LrGrid:
        set_to = T.meta_value(meta, "controls.lr.lr_scales")
        growth = T.meta_value(meta, "controls.lr.max_growth")
        return cls(tuple(C.lr_scales(table, method)),
                   tuple(sorted(float(x) for x in set_to)) if isinstance(set_to, (list, tuple)) and set_to else None,
                   int(growth) if isinstance(growth, (int, float)) and not isinstance(growth, bool) else None)

    @property
    def added(self) -> dict[str, list[float]]:
        """The scales run beyond the grid set, per edge ('bottom', 'top'): how the grid grew."""
        if self.set_to is None:
            return {"bottom": [], "top": []}
        return {"bottom": [s for s in self.scales if s < min(self.set_to)],
                "top": [s for s in self.scales if s > max(self.set_to)]}

    @property
    def fixed(self) -> bool:
        """The grid ran as set, with no rule to grow it (the run recorded none)."""
        return self.set_to is not None and self.max_growth is None and not any(self.added.values())

    def edge_words(self, edge: str) -> str:
        """Where a choice on ``edge`` lies, e.g. 'the top of the fixed grid 0.5–2', 'the top of the grid 0.25–16
        (grown 2 times there, the limit)'."""
        if edge == "only":
            return "the only scale run"
        grid = f"the {edge} of the {'fixed ' if self.fixed else ''}grid {_grid_text(list(self.scales))}"
        grown = len(self.added.get(edge, []))
        if self.max_growth is not None and grown >= self.max_growth:
            grid += f" (grown {grown} time{'s' if grown != 1 else ''} there, the limit)"
        return grid

    def describe(self) -> str:
        """How the grid was set and whether it grew, from the run's records."""
        if self.set_to is None:
            return f"the scales run: {_scales_text(self.scales)} (the run's params snapshot does not record the grid)"
        if self.fixed:
            return f"the fixed grid {_scales_text(self.scales)} (`controls.lr.lr_scales` as the run recorded it)"
        added = [s for edge in ("bottom", "top") for s in self.added[edge]]
        rule = (f", which grows by the next scale beyond an edge a choice lies on, at most {self.max_growth} "
                f"time{'s' if self.max_growth != 1 else ''} per edge" if self.max_growth is not None else "")
        grown = f"grown by {_scales_text(added)}" if added else "not grown (no choice on an edge)"
        return f"the grid {_scales_text(self.set_to)} (`controls.lr.lr_scales` as the run recorded it){rule}: {grown}"


def lr_edges(table, method: str, grid: LrGrid | None = None) -> dict[str, str]:
    """Per representation of ``method``'s learning-rate control whose chosen scale is an edge of the grid it ran
    (not bracketed), the words that say where, e.g. 'SP chose ×4, the top of the grid 0.25–4'."""
    grid = grid if grid is not None else LrGrid(tuple(C.lr_scales(table, method)), None, None)
    out = {}
    for row in C.lr_choice(table[table["method"] == method]).itertuples():
        edge = C.grid_edge(row.lr_scale, list(grid.scales))
        if edge:
            out[row.repr] = f"{side_label(row.repr)} chose ×{row.lr_scale:g}, {grid.edge_words(edge)}"
    return out


def claim_k2(ev: Evidence) -> ClaimResult:
    """K2: for each method of the learning-rate control, IP at its validation-chosen scale against SP at its
    own, test accuracy paired by seed; a part whose choice lies on an edge of the grid run says so (not
    bracketed), and the verdict names it."""
    table = ev.tables.controls
    methods = C.methods_of(table, "lr")
    if not methods:
        return _missing("K2", f"not tested here: no learning-rate-control runs in {ev.path_of('controls')}")
    scale = ev.scale
    chosen = C.lr_choice(table).set_index(["method", "repr"])["lr_scale"].to_dict()
    grids = {m: LrGrid.of(table, m, ev.tables.meta) for m in methods}
    edges = {m: lr_edges(table, m, grids[m]) for m in methods}
    pending = []
    for m in methods:
        edge = "; ".join(f"{edges[m][r]}: not bracketed" for r in ("sp", "ip") if r in edges[m])
        pending.append(Pending(m, C.lr_advantage(table, m).comparison(), scale,
                               f"{m}, SP at ×{chosen.get((m, 'sp'), float('nan')):g} vs IP at ×"
                               f"{chosen.get((m, 'ip'), float('nan')):g} of train.lr"
                               + (f" ({edge})" if edge else "") + ", test accuracy"))
    parts = decide_parts(pending, ev.alpha)
    for p in parts:
        scales = C.lr_scales(table, p.label)
        p.numbers.update({"grid_low": scales[0] if scales else float("nan"),
                          "grid_high": scales[-1] if scales else float("nan"), "grid_size": len(scales),
                          **{f"{r}_scale": chosen.get((p.label, r), float("nan")) for r in ("sp", "ip")},
                          **{f"{r}_on_edge": r in edges[p.label] for r in ("sp", "ip")}})
    ds = difference_scale(scale)
    runs = table[table["control"] == "lr"]
    info, choices_run = [], []
    for m in methods:
        scales = C.lr_scales(table, m)
        edge = {r: " (an edge: not bracketed)" for r in edges[m]}
        choices = ", ".join(f"{side_label(r)} ×{chosen[(m, r)]:g}{edge.get(r, '')}"
                            for r in T.reprs_present(runs[runs["method"] == m]) if (m, r) in chosen)
        choices_run.append(f"{m}: {grids[m].describe()}; chosen {choices}")
        info.append(f"{m}: IP−SP at " + "; ".join(f"×{s:g} {ds.with_ci(C.lr_advantage(table, m, s).comparison().diff)}"
                                                   for s in scales))
    val = runs["val_samples"].dropna() if "val_samples" in runs else []
    held = f"{int(val.iloc[0])} training images" if len(val) else "a slice of the training images"
    summary = (f"Each representation trained at train.lr × each scale on the training images less {held} held "
               f"out for validation; each representation's scale is the one with the highest mean validation "
               f"accuracy (the test set is never used to choose); IP at its scale against SP at its own, test "
               f"accuracy paired over seeds (parts: {tally(parts)}). Scales run and choices: "
               + ". ".join(choices_run) + ". A choice on an edge of the "
               "grid is not bracketed (a scale beyond it might do better), and the part says so. For information: "
               + ". ".join(info) + ".")
    on_edge = {p.label: [edges[p.label][r] for r in ("sp", "ip") if r in edges[p.label]] for p in parts}
    on_edge = {label: words for label, words in on_edge.items() if words}
    for p in parts:
        if p.label in on_edge:
            words = on_edge[p.label]
            # both representations at the same edge: said once
            same = len(words) == 2 and words[0].split(" ", 1)[1] == words[1].split(" ", 1)[1]
            p.caveat = f"SP and IP {words[0].split(' ', 1)[1]}" if same else "; ".join(words)
            p.mark = GRID_EDGE_MARK
    result = _result("K2", parts, summary, ds, "IP−SP test acc., best vs best")
    if on_edge:
        result.caveat = ("a learning rate chosen on an edge of its grid, not bracketed (a scale beyond it might do "
                         "better), in " + "; ".join(f"part {p.marked} ({'; '.join(on_edge[p.label])})"
                                                   for p in parts if p.label in on_edge))
    return result


def control_verdicts(ev: Evidence) -> list[ClaimResult]:
    return [claim_k1(ev), claim_k2(ev)]
