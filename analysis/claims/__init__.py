"""One function per claim C1..C10 of STUDY_SPEC section 5, each returning a :class:`ClaimResult`.

========  =======================================  ============================
claim     what it tests                            module
========  =======================================  ============================
C1        IP beats SP for every method             :mod:`.accuracy`
C2        the advantage grows with sparsity        :mod:`.accuracy`
C3        larger advantage on harder data          :mod:`.accuracy`
C4        equal runtime and parameter costs        :mod:`.costs`
C5        spatially dense IP filters               :mod:`.filters`
C6        more gradient flow                       :mod:`.trainability`
C7        smaller generalisation gap               :mod:`.trainability`
C8        IP also helps dense training             :mod:`.accuracy`
C9        Theorem 1 holds numerically              :mod:`.theorem1`
C10       the advantage holds for longer training  :mod:`.length`
========  =======================================  ============================

Every claim takes the study's :class:`~analysis.evidence.Evidence` (built once from the
tables) and decides by the rule of :mod:`analysis.stats`; the claims' texts are in
:mod:`analysis.paper`, their figures in :mod:`analysis.figures`.
"""
from .accuracy import claim_c1, claim_c2, claim_c3, claim_c8
from .costs import STEP_TIME_RATIO_MAX, claim_c4
from .parts import ClaimResult, Part
from .filters import claim_c5
from .length import claim_c10
from .theorem1 import claim_c9, one_step_ranges
from .trainability import claim_c6, claim_c7

__all__ = ["ClaimResult", "Part", "STEP_TIME_RATIO_MAX", "claim_c1", "claim_c10", "claim_c2", "claim_c3", "claim_c4",
           "claim_c5", "claim_c6", "claim_c7", "claim_c8", "claim_c9", "one_step_ranges"]
