"""Write ``paper_figures/REPORT.md`` from the tidy tables and the claim verdicts.

The body reads in minutes: the answer in a few lines and one table (:mod:`analysis.answer`), Fig. 1,
the claims in one table (each verdict with the part it turns on), the training-length axis, the
ablation and the controls.  The appendix (after :data:`APPENDIX_TITLE`) holds the verdict rule, the
setting, the sanity of the baselines, every claim's and control's parts, the choices and how to
re-run.

Every number in the report comes from the tables (or meta.json); the only constants
are the definitions of the verdict rule (:mod:`analysis.stats`, with the C4 threshold
in :mod:`analysis.claims.costs`) and the paper's own statements (:mod:`analysis.paper`).

Command line (the pipeline's ``report`` stage)::

    python -m analysis.report --results results --out paper_figures
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import re
from pathlib import Path
from typing import Sequence

from . import tables as T
from .ablations import REFERENCE, ablation_comparisons
from .answer import CAVEAT_MARKS, collapse_note, dense_accuracy, headline_table, opening, seeds_text, short_group
from .claims import STEP_TIME_RATIO_MAX, ClaimResult
from .claims.accuracy import EQUAL_STORAGE_SUFFIX
from .claims.controls import control_verdicts
from .claims.costs import paper_network_overheads
from .claims.parts import SCHEDULE_MARK, claim_part, turns_on
from .claims.schedules import schedules, squeezed
from .evidence import Evidence, Runs
from .figures import FIGURES
from .formatting import Scale, excluded_text, fmt_sparsity, holm_gap, side_label
from .length_section import length_section
from .paper import PAPER, PAPER_FB_OVERHEAD_PERCENT
from .sanity import README_SECTION, TOLERANCE, Check
from .sanity import checks as sanity_checks
from .stats import (BOOTSTRAP_MIN_PAIRS, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, MIN_SEEDS, NOT_SUPPORTED, NOT_TESTED,
                    ROUGH_BELOW, SUPPORTED, TARGET_POWER,
                    Stats, is_missing)
from .verdicts import all_verdicts

REPORT_NAME = "REPORT.md"

#: the parts an empty list in params.yaml switches off: their table, and the keys (any one empty)
SWITCHES = {"sweep": ["sweep.sparsities"], "axis": ["axis.epochs"], "ablation": ["ablation.fb_inits", "ablation.shares"],
            "controls": ["controls.shuffle.methods", "controls.lr.methods"]}


def switched_off(meta: dict) -> dict[str, str]:
    """The parts of :data:`SWITCHES` whose lists are all empty in meta.json's params (or the
    sweep's methods), each with the keys that say so."""
    params = meta.get("params") or {}
    empty = {key for keys in SWITCHES.values() for key in [*keys, "sweep.methods"]
             if T.dotted_lookup(params, key)[1] == []}
    off = {name: keys for name, keys in SWITCHES.items() if params and set(keys) <= empty}
    if "sweep.methods" in empty:
        off["sweep"] = ["sweep.methods"]
    return {name: " and ".join(f"`{k}: []`" for k in keys) for name, keys in off.items()}
#: params.yaml keys listed under "Our choices" (what the paper does not fix); read from meta.json's snapshot
CHOICE_KEYS = (
    ("data.name", "dataset", "dataset"), ("data.train_subset", "training subset (images; null = full split)",
                                          "train_subset"),
    ("data.augment", "data augmentation"), ("model.name", "model", "model"), ("model.width", "base width", "width"),
    ("train.epochs", "epochs", "epochs"), ("train.batch_size", "batch size"), ("train.lr", "learning rate"),
    ("train.schedule", "learning-rate schedule"), ("train.weight_decay", "weight decay"),
    ("interspace.fb_init", "FB initialisation"), ("interspace.share", "FB sharing"),
    ("interspace.fb_lr_scale", "FB learning-rate scale"), ("interspace.fb_weight_decay", "FB weight decay"),
    ("interspace.fb_in_budget", "FB entries charged to the budget"), ("prune.scope", "score scope"),
    ("prune.distribution", "random-pruning layer distribution"), ("prune.lt.rounds", "LT rounds"),
    ("prune.lt.rewind_step", "LT rewind step"), ("prune.dst.interval", "RigL/SET update interval (steps)"),
    ("data.metric_samples", "samples for gradient flow / Hessians"),
    ("theorem1.fd_samples", "samples for the Thm 1 finite-difference check of grad F"),
)


def _md_escape(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _duration(seconds) -> str:
    if seconds is None or is_missing(seconds):
        return "missing"
    seconds = float(seconds)
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def _value(v) -> str:
    if v is None:
        return "missing"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v) if v else "missing"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {x}" for k, x in v.items())
    return str(v)


def _in_params(meta: dict, dotted: str) -> bool:
    """Whether meta.json's params snapshot has ``dotted`` at all (its value may be null)."""
    return T.dotted_lookup(meta.get("params") or {}, dotted)[0]


def _split(meta: dict, key: str, dotted: str) -> str:
    """A data split as the run used it: the whole split (``null`` in params.yaml) or a fixed subset."""
    value = T.meta_value(meta, key, dotted)
    if value is not None:
        return f"a fixed subset of {_value(value)} images"
    return "the full split" if _in_params(meta, dotted) else "missing"


FIGURE_DIR = "figures"  # figures live in <out>/figures (the `figures` stage's output)


def _figure_md(name: str, out_dir: Path, caption: str) -> str:
    if (out_dir / FIGURE_DIR / f"{name}.png").is_file():
        return f"![{caption}]({FIGURE_DIR}/{name}.png) [PDF]({FIGURE_DIR}/{name}.pdf)"
    return f"*Figure `{name}` not generated (run `python -m analysis.figures`).*"


# --------------------------------------------------------------------------- sections

def schedule_rows(ev: Evidence) -> list[tuple[str, str]]:
    """How the methods' schedules fit the run (STUDY_SPEC section 6): the step-counted schedules by the library's
    rule from the params snapshot, beside what the runs recorded; the LT rewind step."""
    t = ev.tables
    s, rows = t.summary, []
    steps = T.steps_per_run(t.meta, s)
    for method, schedule in schedules(t.meta, ev.headline.frame).items():
        rows.append((f"{method} {schedule.what} per run", schedule.setting()))
    rewind = T.meta_value(t.meta, "prune.lt.rewind_step")
    if (s["method"] == "lt").any() and isinstance(rewind, (int, float)):
        share = f" ({100 * rewind / steps:.1f} % of training)" if steps else ""
        rows.append(("LT rewind step", f"{int(rewind)}{share}"))
    return rows


def _stage_seed_rows(meta: dict, seeds) -> list[tuple[str, str]]:
    """The seeds of the sweep, the ablation and the controls where they differ from the main runs'
    (null in params.yaml: the top-level seeds)."""
    rows = []
    for label, key in (("seeds of the sweep", "sweep.seeds"), ("seeds of the ablation", "ablation.seeds"),
                       ("seeds of the shuffle control", "controls.shuffle.seeds"),
                       ("seeds of the learning-rate control", "controls.lr.seeds")):
        value = T.meta_value(meta, key)
        if value is not None and list(value) != list(seeds or []):
            rows.append((label, _value(value)))
    return rows


def _subset_rows(meta: dict) -> list[tuple[str, str]]:
    """What this run measured on a subset of its runs to save time, as params.yaml chose it (null:
    every method, representation or seed), and the controls' methods; no row where the params
    snapshot lacks the key."""
    rows, params = [], meta.get("params") or {}
    hessian = {key: T.dotted_lookup(params, f"trainability.{key}")
               for key in ("hessian_methods", "hessian_reprs", "seeds")}
    if any(found for found, _ in hessian.values()):
        shown = [_value(value) if value is not None else f"every {what}"
                 for (_, value), what in zip(hessian.values(), ("method", "representation", "seed"))]
        rows.append(("Hessian spectra (to save time: `trainability.hessian_methods` × `hessian_reprs` × `seeds`; "
                     "gradient flow and filters of every run)", " × ".join(shown)))
    for label, key in (("mask-shuffle control, methods", "controls.shuffle.methods"),
                       ("learning-rate control, methods", "controls.lr.methods")):
        found, value = T.dotted_lookup(params, key)
        if found:
            rows.append((label, _value(value) if value else "none (not run)"))
    return rows


def setting_section(ev: Evidence) -> str:
    t, m = ev.tables, ev.tables.meta
    hw = m.get("hardware")
    if isinstance(hw, dict):
        hardware = ", ".join(f"{k}: {v}" for k, v in hw.items())
    else:
        hardware = _value(hw)
    seeds = T.meta_value(m, "seeds")
    if seeds is None and len(t.summary):
        seeds = sorted(int(s) for s in t.summary["seed"].dropna().unique())
    rows = [
        ("dataset", _value(T.meta_value(m, "dataset", "data.name"))),
        ("training set", _split(m, "train_subset", "data.train_subset")),
        ("model", _value(T.meta_value(m, "model", "model.name"))),
        ("width", _value(T.meta_value(m, "width", "model.width"))),
        ("epochs", _value(T.meta_value(m, "epochs", "train.epochs"))),
        ("batch size", _value(T.meta_value(m, "train.batch_size"))),
        ("training steps per run", _value(T.steps_per_run(m, t.summary))),
        ("test set", _split(m, "test_subset", "data.test_subset")),
        ("precision", _value(T.meta_value(m, "train.precision"))),
        ("dense accuracy (test)", dense_accuracy(t.summary)),
        *schedule_rows(ev),
        ("seeds", _value(seeds)),
        *_stage_seed_rows(m, seeds),
        *_subset_rows(m),
        ("headline sparsity", fmt_sparsity(ev.sparsity) if ev.sparsity is not None else "missing"),
        ("methods run", ", ".join(T.ordered_methods(t.summary["method"].dropna().unique())) or "missing"),
        ("hardware", hardware),
    ]
    # recorded durations, named by their meta.json key; the main runs' training time is always listed
    main_runs = t.summary[t.summary["experiment"] == "main"] if "experiment" in t.summary else t.summary
    untimed = int(main_runs["step_seconds"].isna().sum()) if "step_seconds" in main_runs and len(main_runs) else 0
    rows.append(("training time of the main runs (sum over runs)", _duration(m.get("training_seconds_main_runs"))
                 + (f" ({untimed} runs without: resumed from a checkpoint written after their last step, they "
                    "trained no step themselves)" if untimed else "")))
    rows += [(key.replace("_", " "), _duration(value)) for key, value in m.items()
             if "seconds" in key and key != "training_seconds_main_runs" and isinstance(value, (int, float))]
    stages = m.get("stage_wall_seconds")
    if isinstance(stages, dict) and stages:
        main_stages = {k: v for k, v in stages.items() if k.startswith("train-")}
        rows.append(("wall time of the stages (last run of each, `results/profile/`)",
                     f"{_duration(sum(stages.values()))} over {len(stages)} stages, of which the main runs' "
                     f"(dense, train@<method>) {_duration(sum(main_stages.values()))}"))
    if isinstance(m.get("runs_main"), (int, float)) and isinstance(m.get("runs_expected_main"), (int, float)):
        rows.append(("main runs in the summary", f"{int(m['runs_main'])} of {int(m['runs_expected_main'])} expected"))
    rows.append(("torch", _value(m.get("torch_version", m.get("torch")))))
    present = [name for name in T.SCHEMAS if t.present.get(name)]
    # a part switched off by an empty list in params.yaml is not a missing table
    off = switched_off(m)
    absent = [f"`{T.SCHEMAS[name][0]}`" for name in T.SCHEMAS if not t.present.get(name) and name not in off]
    rows += [(f"{name}: switched off", f"{keys} in params.yaml") for name, keys in off.items()]
    text = "## Setting\n\n" + _table(("", ""), rows)
    text += f"\n\nTables read from `{t.results_dir}`: {len(present)} of {len(T.SCHEMAS)} present."
    if absent:
        text += " Missing (what depends on them is reported as missing): " + ", ".join(absent) + "."
    return text


def rule_section(alpha: float) -> str:
    return (
        "## How a verdict is decided\n\n"
        "Every comparison of IP with SP is paired: the SP and IP runs of one seed share the initial weights, data "
        "order and pruning data (`analysis/stats.py`: `compare_runs`, `decide`). For one part of a claim (a "
        "method, a sparsity, a measure) the per-seed differences d = IP − SP give a mean and a two-sided "
        f"Student-t interval with n − 1 degrees of freedom at α = {alpha:g} (`analysis.alpha`). A claim holds only "
        "if every part holds, so it is decided as an intersection–union test (Berger 1982): a part is "
        f"**supported** if its own {100 * (1 - alpha):g} % interval lies entirely on the claimed side of 0 (above 0; "
        "below 0 for a gap or a loss, where lower is better), and the claim is *supported* if every part is; no "
        "multiplicity adjustment is needed, since the claim is wrong only if some part is. A part is **not "
        "supported** if it is shown to go the other way, a statement about one of several parts, so that side "
        "takes Holm–Bonferroni over the claim's testable parts: ordered by two-sided p-value, the k-th of m gets "
        "confidence 1 − α/(m − k + 1), stepping down until a part is not rejected; the claim is *not supported* "
        "if any part is. Everything else is **inconclusive**, with the number of seeds that would give "
        f"{100 * TARGET_POWER:.0f} % power for a two-sided paired t-test at α at the observed mean and sd (rough "
        f"when it rests on fewer than {ROUGH_BELOW} pairs); *not tested here* means fewer than {MIN_SEEDS} pairs. "
        "C1 is decided once per accounting (IP: FB entries as overhead; IP_eq: charged to the budget), each "
        "accounting's methods one Holm family; its overall verdict reads both as one claim (supported if both are, "
        "not supported only if a part goes the other way after Holm over the parts of both). A "
        f"percentile bootstrap interval ({BOOTSTRAP_RESAMPLES} resamples, fixed seed {BOOTSTRAP_SEED}) is printed "
        f"beside the t interval from {BOOTSTRAP_MIN_PAIRS} pairs on (with fewer it is little more than the "
        "sample's range) and never decides. A pair in which either run is disconnected (no path from input to "
        "output) is left out of every IP-vs-SP comparison and counted (\"n pairs excluded: disconnected\"). "
        "C4 compares costs with thresholds instead (below), and C9 counts pass/fail checks. Accuracies are "
        "printed in % and differences in percentage points (pp)."
    )


def _part_name(part) -> str:
    return part.marked.removesuffix(EQUAL_STORAGE_SUFFIX)


def _turning(parts, verdict: str) -> str:
    part = turns_on(parts, verdict)
    return f", on {_part_name(part)} alone" if part is not None else ""


def turning_text(r: ClaimResult, short: bool = True) -> str:
    """Where a verdict turns on one part, that part: for a claim of one set of parts ', on snip alone' (or ''); for
    a claim of several sets, each set's verdict and the part it turns on, e.g. ' (equal sparsity: inconclusive,
    on rigl† alone; equal storage: not supported, on rigl† alone)'."""
    if not r.group_verdicts:
        return _turning(r.parts, r.verdict)
    return " (" + "; ".join(f"{short_group(g) if short else g}: {v}"
                            + _turning([p for p in r.parts if p.group == g], v)
                            for g, v in r.group_verdicts.items()) + ")"


def _verdict_cell(r: ClaimResult) -> str:
    """The verdict, the part it turns on and its note; a note the parts' caveats carry (marked † or ‡, said in the
    opening's caveats) is not repeated."""
    noted = r.caveat and not any(p.caveat for p in r.parts)
    return f"**{r.verdict}**" + turning_text(r) + (f"; note: {r.caveat}" if noted else "")


def _verdict_line(r: ClaimResult) -> str:
    """'**Verdict: ….**', what it rests on that a reader must know (:attr:`ClaimResult.caveat`), and the part it
    turns on (a claim of several sets of parts: the sets' list below says it per set)."""
    turning = "" if r.group_verdicts else _turning(r.parts, r.verdict)
    return (f"**Verdict: {r.verdict}.**" + (f" Note: {r.caveat}." if r.caveat else "")
            + (f" It turns {turning.removeprefix(', ')}." if turning else ""))


def claims_table(results: Sequence[ClaimResult]) -> str:
    """One row per claim: its verdict (with the part it turns on), its key numbers in one line, its figures."""
    rows = [(r.claim_id, r.claim, _verdict_cell(r), r.brief or r.key_numbers or "—",
             ", ".join(f"[{f}]({FIGURE_DIR}/{f}.png)" for f in r.figures) or "—") for r in results]
    return ("## Claims\n\nEach claim of the paper's abstract and introduction by the rule of STUDY_SPEC §5 (appendix: "
            "\"How a verdict is decided\"); a verdict that turns on one part names it, "
            f"{' and '.join(CAVEAT_MARKS)} mark a part the opening's caveats explain (a schedule squeezed into the "
            "run; a choice on an edge of its grid); every part's numbers are in the claim's appendix section."
            "\n\n" + _table(("id", "claim (abstract/introduction)", "verdict", "key numbers", "figure"), rows))


def _mark_methods(text: str, marks: dict[str, str]) -> str:
    """``text`` with each method of ``marks`` that it names (any case: 'GMP', 'RigL', 'gmp') followed by its mark."""
    for method, mark in marks.items():
        text = re.sub(rf"\b({re.escape(method)})\b(?!{re.escape(mark)})", rf"\1{mark}", text, flags=re.IGNORECASE)
    return text


def baseline_checks(ev: Evidence) -> list[Check]:
    """What the pruning literature leads one to expect of the baselines (:func:`analysis.sanity.checks`), read on
    the SP runs alone (the expectations are about SP baselines), with a method whose schedule the run squeezed
    marked † wherever a check names it."""
    runs = ev.headline.frame
    sp = dataclasses.replace(ev, headline=Runs.of(runs[runs["repr"] == "sp"])) if len(runs) else ev
    marks = {method: SCHEDULE_MARK for method in squeezed(ev.tables.meta, runs)}
    return [dataclasses.replace(c, expectation=_mark_methods(c.expectation, marks),
                                numbers=_mark_methods(c.numbers, marks)) for c in sanity_checks(sp)]


def sanity_line(ev: Evidence) -> str:
    """The sanity of the baselines in one line: how many expectations disagree, and which (numbers in the
    appendix)."""
    found = baseline_checks(ev)
    if not found:
        return ""
    off = [c.expectation for c in found if c.agrees is False]
    checked = [c for c in found if c.agrees is not None]
    unchecked = len(found) - len(checked)
    return (f"Baselines against what the pruning literature leads one to expect (appendix: \"Sanity of the "
            f"baselines\"): {len(off)} of {len(checked)} expectations checked do not hold"
            + (": " + "; ".join(off) if off else "")
            + (f" ({unchecked} not checked: runs missing)" if unchecked else "") + ".")


def sanity_section(ev: Evidence) -> str:
    """The appendix's sanity of the baselines: every expectation of :func:`baseline_checks` with SP's numbers."""
    found = baseline_checks(ev)
    if not found:
        return "## Sanity of the baselines\n\nmissing (no main runs)."
    rows = [(c.expectation, "missing" if c.agrees is None else ("yes" if c.agrees else "**no**"), c.numbers)
            for c in found]
    off = [c for c in found if c.agrees is False]
    lead = ("What the pruning literature leads one to expect of the baselines, against this study's SP runs "
            f"(\"at or above\" and \"close to\" allow {100 * TOLERANCE:.0f} pp; no verdicts). "
            + (f"{len(off)} of {len(found)} disagree: read the claims with that in mind. What was measured about "
               f"the disagreements of the default study is in the README, \"{README_SECTION}\"." if off
               else "Every expectation that could be checked agrees."))
    return ("## Sanity of the baselines\n\n" + lead + "\n\n"
            + _table(("expectation", "agrees", "numbers (SP runs at the headline sparsity, connected)"), rows))


def fb_overhead_table(t: T.Tables) -> str:
    """The FB overhead of the paper's networks per FB-sharing mode, and which pairs meet the paper's 0.01 %."""
    ref = paper_network_overheads(t)
    if ref.empty:
        return ""
    rows = [(r.model, "" if is_missing(r.width) else int(r.width), r.share, f"{int(r.dense_params):,}",
             f"{int(r.fb_overhead_params):,}", f"{r.fb_overhead_percent:.4g} %", "yes" if r.meets_paper else "no")
            for r in ref.itertuples()]
    meets = [f"{r.model} share={r.share}" for r in ref.itertuples() if r.meets_paper]
    return (f"FB overhead of the paper's networks (share = layer: one FB per conv layer; network: one FB per "
            f"kernel size). Within the paper's {PAPER_FB_OVERHEAD_PERCENT} %: "
            f"{', '.join(meets) if meets else 'none'}.\n\n"
            + _table(("model", "width", "FB sharing", "dense parameters", "FB entries", "FB / dense",
                      f"≤ {PAPER_FB_OVERHEAD_PERCENT} %"), rows))


def claim_section(r: ClaimResult, out_dir: Path, t: T.Tables, ev: Evidence | None = None) -> str:
    detailed = len(r.parts) > 1
    text = [f"## {r.claim_id}: {r.claim}", _verdict_line(r)]
    if r.group_verdicts:
        text.append("\n".join(f"- {name}: **{v}**" + _turning([p for p in r.parts if p.group == name], v)
                              for name, v in r.group_verdicts.items()))
    text.append((r.summary or r.explanation) if detailed else r.explanation)
    if r.claim_id == "C1" and ev is not None:
        bought = fb_entries_buy(ev)
        if bought:
            text.append(bought)
    if r.claim_id == "C2" and ev is not None:
        storage = storage_view(ev)
        if storage:
            text.append(storage)
    if detailed:
        text.append("\n".join(f"- **{p.label}** — {p.verdict}" + (f": {p.note}" if p.note else "")
                              for p in r.parts))
    overheads = fb_overhead_table(t) if r.claim_id == "C4" else ""
    if overheads:
        text.append(overheads)
    for name in r.figures:
        text.append(_figure_md(name, out_dir, f"{r.claim_id} evidence: {name}"))
    return "\n\n".join(text)


def fb_entries_buy(ev: Evidence) -> str:
    """What storing the FB entries on top of SP's budget buys: IP − IP_eq per method, paired over seeds."""
    if not ev.has_equal_storage:
        return ""
    diff = Scale(ev.scale.factor, " pp", 2)
    bits = []
    for m in ev.methods:
        c = ev.headline.comparison(m, "test_acc", against="ip", base=T.EQUAL_STORAGE, keys=["method", "seed"])
        bits.append(f"{m} {diff.with_ci(c.diff)}")
    return ("What the FB entries buy (information): IP − IP_eq, the same IP with and without its FB entries "
            "charged to the budget, paired over seeds: " + "; ".join(bits) + ".")


def storage_module():
    """:mod:`analysis.plots.storage` (the storage view's figure and sentence) when it exists, else None."""
    name = f"{__package__}.plots.storage"
    return importlib.import_module(name) if importlib.util.find_spec(name) is not None else None


def storage_view(ev: Evidence) -> str:
    """The storage view read in one sentence, for C2's appendix section (its figure, fig. 13, is among C2's):
    ``storage_view_sentence(sweep, summary)`` of :func:`storage_module`. Empty while that module or function does
    not exist (the report works either way)."""
    storage = storage_module()
    if storage is None or not hasattr(storage, "storage_view_sentence"):
        return ""
    return storage.storage_view_sentence(ev.tables.sweep, ev.tables.summary) or ""


def ablation_section(t: T.Tables, out_dir: Path, alpha: float, results: Sequence[ClaimResult] = ()) -> str:
    """The ablation: the variants that differ from the main setting, one Holm family, each against SP and
    beside its reference (the main setting's runs, which the claims decide on every main seed)."""
    comp = ablation_comparisons(t.ablation, alpha, summary=t.summary)
    if comp.empty:
        return "## Ablations\n\nmissing (no ablation table)."
    factor = T.percent_scale(t.ablation["test_acc"])
    sc = Scale(factor, "", 2)
    diff = Scale(factor, "", 2)
    main_seeds = sorted(int(x) for x in t.summary["seed"].dropna().unique()) if len(t.summary) else []
    infeasible = {}
    if "infeasible" in t.ablation.columns:
        for r in t.ablation.dropna(subset=["infeasible"]).itertuples():
            infeasible[(r.method, r.variant)] = f"infeasible: {r.infeasible}"
    references = comp[comp["verdict"] == REFERENCE]
    members = comp[comp["verdict"] != REFERENCE]
    shown_refs, rows, dense_refs = {}, [], []
    for r in references.itertuples():
        if r.method == "dense":
            dense_refs.append(r)
            continue
        key = (r.method, r.main_repr)
        if key in shown_refs:          # the main setting under a second name (FB init and sharing groups)
            shown_refs[key].append(r.variant)
            continue
        shown_refs[key] = [r.variant]
    ref_rows = {}
    for (method, main_repr), names in shown_refs.items():
        r = references[(references["method"] == method) & (references["variant"] == names[0])].iloc[0]
        label = method + ("" if main_repr == "ip" else " (equal storage)")
        part = claim_part(results, "C1", label)
        decided = (f"C1 decides these runs on seeds {seeds_text(main_seeds)}: {part.verdict}" if part is not None
                   else "the main runs")
        ref_rows[(method, main_repr)] = [
            method, f"{', '.join(names)}: the main {side_label(main_repr)} runs (reference)",
            sc.mean_sd(Stats(int(r["n"]), r["mean"], r["sd"])),
            diff.with_ci(r["comparison"].diff).replace("[95 % CI ", "["), f"reference: {decided}", "–"]
    rows += list(ref_rows.values())
    for r in members.itertuples():
        vs = r.vs_reference
        ref = f" vs the main {side_label(r.reference_repr)} runs" if isinstance(r.reference_repr, str) else ""
        rows.append([r.method, r.variant, sc.mean_sd(Stats(int(r.n), r.mean, r.sd)),
                     diff.with_ci(r.comparison.diff).replace("[95 % CI ", "[") + excluded_text(r.comparison),
                     infeasible.get((r.method, r.variant)) or outcome_text(r.comparison, diff),
                     (diff.with_ci(vs.diff).replace("[95 % CI ", "[") + ref) if vs is not None else "–"])
    seeds = sorted(int(x) for x in t.ablation["seed"].dropna().unique())
    sp = members.iloc[0] if len(members) else comp.iloc[0]
    holm = max((c.decision.holm_m for c in members["comparison"] if c.decision is not None), default=0)
    unit = "%, differences in pp" if factor == 100 else "fractions"
    dense = (f" The dense runs are C8's (decided there on seeds {seeds_text(main_seeds)}) and are not repeated "
             "here." if dense_refs else "")
    shown = {*members["method"], *(method for method, _ in shown_refs)}
    family = f"the {holm} testable variant{'s are' if holm != 1 else ' is'} one Holm family"
    intro = (f"IP variants of {', '.join(T.ordered_methods(shown))} at sparsity "
             f"{fmt_sparsity(t.ablation['sparsity'].dropna().max())}, seeds {seeds_text(seeds)} (test accuracy in "
             f"{unit}; SP {sc.mean_sd(Stats(int(sp.sp_n), sp.sp_mean, sp.sp_sd))}). Each variant that differs from "
             f"the main setting against the SP runs of the same seeds, by the claims' rule ({family}). The arms that "
             "are the main setting's runs are the variants' references, not members of that family: the claims "
             "decide those runs on every main seed. Last column, for information: the variant minus its reference "
             "(the main IP runs; the main IP_eq runs for a variant charged to the budget), paired over seeds."
             + dense)
    return ("## Ablations\n\n" + intro + "\n\n"
            + _table(("method", "IP arm", "IP", "IP−SP (paired, 95 % CI)", "outcome", "− reference (paired)"), rows)
            + "\n\n" + _figure_md(FIGURES["ablation"], out_dir, "ablations"))


def outcome_text(c, scale: Scale) -> str:
    """A decided part's label in a few words: its Holm interval where that decided it, the seeds for 80 % power
    where it is inconclusive (the unadjusted interval is printed beside it)."""
    d = c.decision
    if d is None or d.verdict in (SUPPORTED, NOT_TESTED):
        return c.verdict if d is not None else "—"
    if d.verdict == NOT_SUPPORTED:
        return (f"not supported (Holm {d.holm_rank}/{d.holm_m}: {100 * (1 - d.level):.4g} % CI "
                f"{scale.interval(d.adjusted_ci)})")
    need = f"; {d.seeds_needed} seeds for {100 * TARGET_POWER:.0f} % power" if d.seeds_needed else ""
    gap = f" ({holm_gap(c)})" if holm_gap(c) else ""
    return f"inconclusive{gap}{need}{' (rough)' if need and d.rough else ''}"


def controls_summary(ev: Evidence, results: Sequence[ClaimResult]) -> str:
    """The controls beyond the paper in the body: one row per control claim (details in the appendix)."""
    return "\n\n".join([
        "## Controls (beyond the paper)",
        "Two questions the paper's abstract does not answer, decided by the same rule as the claims: does IP's "
        "advantage depend on *which* entries the masks keep, and is it a larger effective step size (W = λ·Fᵀ with "
        "a trainable F moves W by Δλ·Fᵀ + λ·ΔFᵀ in a step)? Details and figures in the appendix.",
        _table(("id", "claim", "verdict", "key numbers"),
               [(r.claim_id, r.claim, _verdict_cell(r), r.key_numbers) for r in results])])


def controls_section(ev: Evidence, out_dir: Path, results: Sequence[ClaimResult] | None = None) -> str:
    """The controls' detail (appendix): each control claim's verdict, parts and figure, by the claims' rule."""
    results = control_verdicts(ev) if results is None else results
    text = []
    for r in results:
        text.append(f"## {r.claim_id}: {r.claim}\n\n{_verdict_line(r)}\n\n{r.summary or r.explanation}")
        if r.parts:
            text.append("\n".join(f"- **{p.label}** — {p.verdict}" + (f": {p.note}" if p.note else "")
                                  for p in r.parts))
        for name in r.figures:
            text.append(_figure_md(name, out_dir, f"{r.claim_id}: {name}"))
    return "\n\n".join(text)


def choices_section(t: T.Tables, alpha: float) -> str:
    lines = ["## Our choices (not the paper's)",
             "The paper's abstract and introduction do not fix the settings below; each is a choice of this "
             "study, set in `params.yaml` (values as recorded in `meta.json` for this run):", ""]
    for key, label, *fallbacks in CHOICE_KEYS:
        value = T.meta_value(t.meta, key, *fallbacks)
        shown = _value(value) if value is not None else "null" if _in_params(t.meta, key) else "missing"
        lines.append(f"- {label} (`{key}`): {shown}")
    lines += [
        f"- the verdict rule (paired t intervals at α = {alpha:g}: intersection–union for the claimed "
        f"side, Holm–Bonferroni over a claim's parts for the other side, ≥ {MIN_SEEDS} seed pairs; \"How a verdict "
        f"is decided\") and, "
        f"for C4, \"equal runtime\" read as a median IP/SP training-step-time ratio ≤ {STEP_TIME_RATIO_MAX:.2f}",
        "- Theorem 1: the paper's statement was not available; the checks use our formalisation, "
        "[docs/theorem1.md](../docs/theorem1.md) (STUDY_SPEC §4)",
        "- the method definitions (score, schedule, rewinding, DST update) follow the cited originals as "
        "described in STUDY_SPEC §2, not the paper's (unpublished) code",
    ]
    return "\n".join(lines)


def rerun_section(presets_dir: Path) -> str:
    presets = sorted(p.name for p in presets_dir.glob("*.yaml")) if presets_dir.is_dir() else []
    text = [
        "## How to re-run",
        "- `make repro` — set up the environment and run the whole pipeline on the defaults of `params.yaml`.",
        "- `dvc repro` — regenerate whatever is out of date (tables, figures, this report).",
        "- `dvc exp run -S sparsity=0.99` — re-run what depends on the headline sparsity at another value.",
        "- `python -m analysis.figures --results results --out paper_figures` and "
        "`python -m analysis.report --results results --out paper_figures` — figures and this report only.",
        "",
        "Paper-scale settings (GPU machine): copy a preset over `params.yaml`, then run the pipeline:",
        "",
        "```\ncp presets/<name>.yaml params.yaml && dvc repro\n```",
    ]
    if presets:
        text.append("Presets available: " + ", ".join(f"`{p}`" for p in presets) + ".")
    else:
        text.append(f"(No preset files were found in `{presets_dir}` when this report was written.)")
    return "\n".join(text)


#: the heading after which the report's appendix starts (the body before it reads in a few minutes)
APPENDIX_TITLE = "## Appendix"
TITLE = "# Interspace pruning: reproduction report"


def body_figure(ev: Evidence, out_dir: Path) -> str:
    name = FIGURES["accuracy"]
    return _figure_md(name, out_dir, f"Fig. 1: test accuracy per method and representation at sparsity "
                                     f"{fmt_sparsity(ev.sparsity)}, points = seeds")


def build_report(t: T.Tables, out_dir: Path, presets_dir: Path = Path("presets")) -> str:
    """The report's text: the evidence is derived from ``t`` once, and every claim and section reads it.

    The body answers first (:func:`analysis.answer.opening`, one table, Fig. 1), then the claims in one table,
    the training-length axis, the ablation and the controls; the appendix holds the verdict rule, the setting,
    every claim's parts, the choices and how to re-run."""
    out_dir = Path(out_dir)
    ev = Evidence.from_tables(t)
    results = all_verdicts(ev)
    controls = control_verdicts(ev)
    body = [
        TITLE,
        "\n".join(opening(ev, results, controls)),
        headline_table(ev, results),
        collapse_note(ev.headline.frame, t.sweep if len(t.sweep) else None, ev.sparsity),
        body_figure(ev, out_dir),
        claims_table(results),
        *([line] if (line := sanity_line(ev)) else []),
        length_section(ev, results),
        ablation_section(t, out_dir, ev.alpha, results),
        controls_summary(ev, controls),
    ]
    appendix = [
        APPENDIX_TITLE,
        f"Reproduction of {PAPER}. Generated by `python -m analysis.report` from the tables in `{t.results_dir}`; "
        "every number in this report is computed from those tables, none is typed by hand. Below: how a verdict is "
        "decided, the setting, the sanity of the baselines, every claim's and control's parts, the choices of this "
        "study and how to re-run it.",
        rule_section(ev.alpha),
        setting_section(ev),
        sanity_section(ev),
        *[claim_section(r, out_dir, t, ev) for r in results],
        controls_section(ev, out_dir, controls),
        choices_section(t, ev.alpha),
        rerun_section(presets_dir),
    ]
    return "\n\n".join(body + appendix) + "\n"


def write_report(results_dir="results", out_dir="paper_figures", presets_dir="presets") -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = T.load_tables(results_dir)
    text = build_report(tables, out, Path(presets_dir))
    path = out / REPORT_NAME
    path.write_text(text)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write REPORT.md from the tidy tables in --results.")
    parser.add_argument("--results", default="results")
    parser.add_argument("--out", default="paper_figures")
    parser.add_argument("--presets", default="presets", help="folder of paper-scale presets (listed in the report)")
    args = parser.parse_args(argv)
    print(write_report(args.results, args.out, args.presets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
