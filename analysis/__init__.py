"""Analysis layer of the study: tidy tables -> claim verdicts, figures and REPORT.md.

- :mod:`analysis.tables`      loaders with a fixed schema (docs/results.md) and SP/IP pairing
- :mod:`analysis.stats`       the one rule that decides every IP-vs-SP comparison (paired t intervals, Holm over a
  claim's parts), and how parts combine
- :mod:`analysis.collect`     the tidy tables and results/metrics.json the aggregate stage writes
- :mod:`analysis.formatting`  how numbers are written in verdicts and the report
- :mod:`analysis.paper`       the paper's citation, its claims C1..C10 and the numbers it states
- :mod:`analysis.claims`      one function per claim (package: accuracy, costs, filters, trainability, theorem1,
  length)
- :mod:`analysis.ablations`   each IP ablation variant against its SP baseline
- :mod:`analysis.training_length`  the training-length axis: paired differences per length and their change
- :mod:`analysis.verdicts`    every claim's verdict, C1..C10, in order
- :mod:`analysis.figures`     which figure is which file and supports which claim (``python -m analysis.figures``);
  the drawing code is in :mod:`analysis.plots`
- :mod:`analysis.answer`      the report's opening: which claims hold, and the headline table
- :mod:`analysis.report`      paper_figures/REPORT.md (``python -m analysis.report``)
"""
