"""The paper under test: its citation, its claims C1..C10 and the numbers it states.

Everything here is quoted from the paper (abstract and introduction, as summarised in
STUDY_SPEC section 5); the thresholds that are choices of this study live with the
claim that uses them (:mod:`analysis.claims`).
"""
from __future__ import annotations

PAPER = ('Wimmer, Mehnert, Condurache, "Interspace Pruning: Using Adaptive Filter Representations to Improve '
         'Training of Sparse CNNs", CVPR 2022, arXiv:2203.07808')

CLAIMS = {
    "C1": "IP beats SP for every tested pruning method (PaI, LT, DST, during/after training)",
    "C2": "the IP advantage grows with sparsity (largest at high sparsity)",
    "C3": "the advantage is larger on harder data (ImageNet vs CIFAR)",
    "C4": "equal runtime and parameter costs (FB overhead <= 0.01 % of dense parameters for the paper's nets)",
    "C5": "IP yields spatially dense filters after sparse training, SP sparse ones",
    "C6": "IP trains better (improved trainability): more gradient flow during training, lower training loss",
    "C7": "at lower sparsity IP also generalises better (smaller gap)",
    "C8": "interspace representations also improve dense training",
    "C9": "Thm 1 holds numerically",
    "C10": "IP's advantage holds for longer training (our question: the paper's nets are trained to convergence)",
}

#: the paper's statement (introduction): all FBs together cost at most 0.01 % of the dense network's parameters
PAPER_FB_OVERHEAD_PERCENT = 0.01
