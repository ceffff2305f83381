"""The drawing code of the study's figures, one module per group of figures.

- :mod:`.style`         colours, markers, saving, "no data" panels, shared drawing helpers
- :mod:`.accuracy`      fig. 1 accuracy, fig. 2 sweep, fig. 6 generalisation, fig. 8 ablations
- :mod:`.filters`       fig. 3 trained filters and their spatial density
- :mod:`.trainability`  fig. 4 gradient flow, fig. 5 Hessian extremes; appendix fig. A1 gradient flow per
                        part of the network, fig. A2 Hessian spectral densities
- :mod:`.theorem1`      fig. 7 Theorem 1 checks
- :mod:`.costs`         fig. 9 parameters, MACs, step time, FB overhead
- :mod:`.controls`      fig. 10 mask-shuffle control, fig. 11 learning-rate control
- :mod:`.axis`          fig. 12 IP − SP against the training length
- :mod:`.storage`       fig. 13 test accuracy against the numbers stored (the sweep at equal storage)

Which figure is which file, and the command line, are in :mod:`analysis.figures`.
"""
