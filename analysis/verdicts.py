"""A verdict for each claim C1..C10 of STUDY_SPEC section 5, computed from the tables.

This module gathers the claims in order (:data:`CLAIM_FUNCTIONS`, :func:`all_verdicts`)
and is the entry point the report uses.  Where the pieces live:

- :mod:`analysis.evidence`    what every claim reads, derived once from the tables
- :mod:`analysis.stats`       the one rule that decides every IP-vs-SP comparison
  (paired t intervals; intersection–union for "every part holds", Holm–Bonferroni over a claim's
  parts for "a part goes the other way": :func:`~analysis.stats.decide`)
  and how verdicts of several parts combine
- :mod:`analysis.claims`      one function per claim
- :mod:`analysis.formatting`  how the numbers are written
- :mod:`analysis.paper`       the claims' texts and the paper's own numbers
"""
from __future__ import annotations

from .claims import (
    ClaimResult,
    claim_c1,
    claim_c2,
    claim_c3,
    claim_c4,
    claim_c5,
    claim_c6,
    claim_c7,
    claim_c8,
    claim_c9,
    claim_c10,
)
from .evidence import Evidence

CLAIM_FUNCTIONS = {"C1": claim_c1, "C2": claim_c2, "C3": claim_c3, "C4": claim_c4, "C5": claim_c5,
                   "C6": claim_c6, "C7": claim_c7, "C8": claim_c8, "C9": claim_c9,
                   "C10": claim_c10}


def all_verdicts(ev: Evidence) -> list[ClaimResult]:
    """Every claim's result, C1 to C10, from one evidence."""
    return [fn(ev) for fn in CLAIM_FUNCTIONS.values()]
