"""Analysis layer of the study: tidy tables -> claim verdicts, figures and REPORT.md.

- :mod:`analysis.tables`   loaders with a fixed schema (docs/results.md) and SP/IP pairing
- :mod:`analysis.verdicts` one verdict per claim C1..C9, by one documented rule
- :mod:`analysis.figures`  one function per figure (``python -m analysis.figures``)
- :mod:`analysis.report`   paper_figures/REPORT.md (``python -m analysis.report``)
"""
