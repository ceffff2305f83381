"""The study's evidence: what the claims and figures share, derived once from the tables.

:meth:`Evidence.from_tables` derives, once per report:

- the headline sparsity and the main runs at it (:attr:`Evidence.headline`), with the sparse
  methods and the representations present;
- the accountings those representations allow (:attr:`Evidence.accountings`): the paper's, IP
  vs SP, and, where IP_eq runs exist, equal storage, IP_eq vs SP (STUDY_SPEC section 6);
- α of the verdict rule and the scale accuracies are printed in;
- per method, metric and pair of representations, the paired per-seed differences, with pairs
  that contain a disconnected run left out and counted (:meth:`Runs.pairs`, derived on first
  use and kept).

Each claim of :mod:`analysis.claims` takes the evidence and reads like its row of STUDY_SPEC
section 5.  Other sets of runs a claim compares per method (a sweep sparsity, per-run means of
the training history) are :class:`Runs` too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

from . import tables as T
from .formatting import Scale, accuracy_scale
from .stats import Comparison, Pairs, alpha_of


@dataclass(frozen=True, eq=False)
class Runs:
    """Runs compared SP vs IP per method; each method's pairs are derived on first use and kept."""
    frame: pd.DataFrame
    methods: tuple[str, ...]          # the sparse methods, in display order
    reprs: tuple[str, ...]            # SP, IP[, IP_eq]
    _pairs: dict = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Runs:
        return cls(frame, tuple(T.sparse_methods(frame)) if len(frame) else (), T.reprs_present(frame))

    def of_method(self, method: str) -> pd.DataFrame:
        return self.frame[self.frame["method"] == method]

    def pairs(self, method: str, metric: str, against: str = "ip", base: str = "sp",
              keys: Sequence[str] | None = None) -> Pairs:
        """The seed pairs of ``method``'s runs on ``metric``, ``against`` vs ``base`` (keys: those of
        :func:`analysis.tables.paired` unless given)."""
        key = (method, metric, against, base, None if keys is None else tuple(keys))
        if key not in self._pairs:
            self._pairs[key] = Pairs.of(self.of_method(method), metric, keys, against, base)
        return self._pairs[key]

    def comparison(self, method: str, metric: str, higher_is_better: bool = True, against: str = "ip",
                   base: str = "sp", keys: Sequence[str] | None = None) -> Comparison:
        return self.pairs(method, metric, against, base, keys).comparison(higher_is_better)


@dataclass(frozen=True, eq=False)
class Evidence:
    """What every claim reads: the tables, and what the claims would otherwise each derive from them."""
    tables: T.Tables
    sparsity: float | None            # the headline sparsity (:func:`analysis.tables.headline_sparsity`)
    main: Runs                        # every main run (the summary table)
    headline: Runs                    # the main runs at the headline sparsity; dense runs whatever their sparsity
    alpha: float                      # of the verdict rule (``analysis.alpha``)
    scale: Scale                      # how the headline runs' accuracies are printed (% or fraction)

    @classmethod
    def from_tables(cls, t: T.Tables) -> Evidence:
        s = T.headline_sparsity(t)
        runs = T.at_sparsity(t.summary, s)
        return cls(t, s, Runs.of(t.summary), Runs.of(runs), alpha_of(t.meta), accuracy_scale(runs))

    @property
    def methods(self) -> tuple[str, ...]:
        """The sparse methods run at the headline sparsity."""
        return self.headline.methods

    @property
    def reprs(self) -> tuple[str, ...]:
        return self.headline.reprs

    @property
    def accountings(self) -> tuple[str, ...]:
        """The representation compared with SP under each accounting run: ``ip`` (the paper's) and, when
        IP_eq runs exist, ``ip_eq`` (equal storage)."""
        return tuple(r for r in self.reprs if r in T.ACCOUNTINGS)

    @property
    def has_equal_storage(self) -> bool:
        return T.EQUAL_STORAGE in self.reprs

    def path_of(self, name: str) -> str:
        return self.tables.path_of(name)
