"""The methods whose masks change on a schedule counted in optimisation steps (RigL and SET's mask
updates, GMP's pruning steps), and whether the run squeezed that schedule to fit its length.

A schedule is *squeezed* when the run spaces its steps more closely than the method's own default
(:mod:`ip.pruning`'s options model): the run is too short for the default.  A part of a claim
measured on such a method says so next to its number (STUDY_SPEC section 6: the schedules scale with
the run).  Every count comes from the params snapshot in meta.json and the rule the library applies
(:func:`analysis.training_length.dst_updates` for ``ip/pruning/dst.py``,
:func:`~analysis.training_length.gmp_steps` for ``ip/pruning/gradual.py``), set beside what the runs
recorded (``summary.mask_updates``); none is typed here.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import tables as T
from ..training_length import dst_updates, gmp_steps
from .parts import SCHEDULE_MARK


@dataclass(frozen=True)
class Schedule:
    """One method's step-counted schedule in the main runs."""
    method: str
    what: str                      # "mask updates" | "pruning steps"
    interval: int                  # steps between two of them, as run
    default_interval: int | None   # the library's registered default for the method (None: it has none)
    steps: int                     # optimisation steps of a run
    epochs: int | None
    by_rule: int                   # how many the library's rule makes of ``steps``
    recorded: int | None           # median over the main runs that recorded it
    span: str                      # where in training, e.g. 'until 75 % of training'
    published: str = ""            # what the schedule as published makes of ``steps`` (axis.published), if known

    @property
    def squeezed(self) -> bool:
        return self.default_interval is not None and self.interval < self.default_interval

    def short(self) -> str:
        """'17 mask updates, one every 20 steps'."""
        return f"{self.by_rule} {self.what}, one every {self.interval} steps"

    def caveat(self) -> str:
        """What a part measured on this method says next to its number."""
        length = f"{self.epochs}-epoch run's " if self.epochs else "run's "
        default = f" where the library's default is {self.default_interval}" if self.default_interval else ""
        return f"schedule squeezed into the {length}{self.steps} steps: {self.short()}{default}"

    def setting(self) -> str:
        """The setting row's value: the count by the rule, how it is spaced, and what the runs recorded."""
        recorded = f"; the runs recorded {self.recorded}" if self.recorded is not None else ""
        published = f"; {self.published}" if self.published else ""
        return (f"{self.by_rule} (one every {self.interval} steps {self.span} of {self.steps}, by the rule of "
                f"`ip.pruning`{recorded}{published})")


def _options(meta: dict, method: str):
    """(the method's registry entry, its options as run: the params snapshot over the model's defaults), or
    None when the snapshot lacks the method's section or the method has no step-counted schedule."""
    from ip.pruning import method_info
    try:
        info = method_info(method)
    except ValueError:
        return None
    fields = info.options.model_fields
    if not info.has_train_hook or "interval" not in fields:
        return None
    found, section = T.dotted_lookup(meta.get("params") or {}, f"prune.{info.params_key}")
    if not found or not isinstance(section, dict):
        return None
    return info, {name: section.get(name, field.default) for name, field in fields.items()}


def _count(steps: int, opts: dict) -> tuple[str, int, str] | None:
    """(what, how many, where) by the library's rule for a schedule with these options."""
    if "stop_fraction" in opts:
        return ("mask updates", dst_updates(steps, int(opts["interval"]), float(opts["stop_fraction"])),
                f"until {100 * float(opts['stop_fraction']):g} %")
    if {"start_fraction", "end_fraction"} <= set(opts):
        return ("pruning steps", gmp_steps(steps, int(opts["interval"]), float(opts["start_fraction"]),
                                           float(opts["end_fraction"])),
                f"from {100 * float(opts['start_fraction']):g} % to {100 * float(opts['end_fraction']):g} %")
    return None


def _published(meta: dict, method: str, steps: int, what: str) -> str:
    """What the schedule as published (``axis.published.prune.<method>`` of the snapshot) makes of ``steps``."""
    pub = T.meta_value(meta, f"axis.published.prune.{method}")
    if not isinstance(pub, dict) or "interval" not in pub:
        return ""
    counted = _count(steps, pub)
    if counted is None:
        return ""
    length = T.meta_value(meta, "axis.published.epochs")
    runs = f"{length}-epoch runs" if length is not None else "runs as published"
    return f"the spacing of the {runs}, one every {pub['interval']} steps, leaves room for {counted[1]} {what}"


def schedules(meta: dict, runs: pd.DataFrame) -> dict[str, Schedule]:
    """Per sparse method of ``runs`` (the main runs) with a step-counted schedule: the schedule as run."""
    steps = T.steps_per_run(meta, runs)
    if not steps or runs.empty:
        return {}
    epochs = T.meta_value(meta, "epochs", "train.epochs")
    out = {}
    for method in T.sparse_methods(runs):
        found = _options(meta, method)
        if found is None:
            continue
        info, opts = found
        counted = _count(steps, opts)
        if counted is None:
            continue
        what, by_rule, span = counted
        default = info.options.model_fields["interval"].default
        recorded = runs.loc[runs["method"] == method, "mask_updates"].dropna() if "mask_updates" in runs else []
        out[method] = Schedule(method, what, int(opts["interval"]), default if isinstance(default, int) else None,
                               int(steps), int(epochs) if isinstance(epochs, (int, float)) else None, by_rule,
                               int(pd.Series(recorded).median()) if len(recorded) else None, span,
                               _published(meta, method, steps, what))
    return out


def squeezed(meta: dict, runs: pd.DataFrame) -> dict[str, Schedule]:
    """The schedules of :func:`schedules` that the run squeezed (closer than the library's default)."""
    return {m: s for m, s in schedules(meta, runs).items() if s.squeezed}


def mark_squeezed(parts, meta: dict, runs: pd.DataFrame) -> None:
    """Give every part measured on a method whose schedule the run squeezed (its label's first word, e.g.
    'rigl', 'rigl (equal storage)', 'rigl GF') that schedule as its caveat, said next to its note too, and
    :data:`~.parts.SCHEDULE_MARK` as its mark."""
    found = squeezed(meta, runs)
    for p in parts:
        schedule = found.get(p.label.split(" ")[0])
        if schedule is not None and not p.caveat:
            p.caveat = schedule.caveat()
            p.mark = SCHEDULE_MARK
            p.note += f" ({p.caveat})"
