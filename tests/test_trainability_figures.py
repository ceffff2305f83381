"""Figures 4, 5 and 7 and their appendix figures draw what their claims decide: C6's gradient-flow
measure per run, every measured Hessian seed on linear axes, an SLQ density only where it is
resolved, and IP's one-step edge with its sign."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from analysis import figures as Fg
from analysis import tables as T
from analysis.plots.theorem1 import headline_sparsity, one_step_edges
from analysis.plots.trainability import (
    MAX_RESOLVED_PEAKS,
    density_peaks,
    density_resolution,
    gf_per_run,
)
from test_analysis import make_history, make_theorem1, make_trainability

matplotlib.use("Agg")


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts] + \
        [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]


def spiky_density(nodes=(-250.0, -180.0, -120.0, -60.0, -20.0, 0.0, 4.0, 9.0, 15.0), grid_points=1000):
    """A one-probe SLQ curve: a few Lanczos nodes, each smoothed by a Gaussian of 1 % of their range."""
    nodes = np.asarray(nodes)
    sigma = 0.01 * (nodes.max() - nodes.min())
    grid = np.linspace(nodes.min() - 5 * sigma, nodes.max() + 5 * sigma, grid_points)
    weights = np.geomspace(1e-4, 1.0, nodes.size)
    dens = (weights * np.exp(-0.5 * ((grid[:, None] - nodes) / sigma) ** 2)).sum(axis=1)
    return grid, dens / (sigma * np.sqrt(2 * np.pi))


def density_table(grid, dens, methods=("snip",), seeds=(0,)):
    return pd.DataFrame([dict(method=m, repr=r, seed=s, when=w, grid=g, density=d) for m in methods
                         for r in T.REPRS for s in seeds for w in ("init", "final") for g, d in zip(grid, dens)])


def test_the_appendix_figures_survive_empty_tables(tmp_path):
    t = T.Tables()
    for name, drawn in (("a1", Fg.fig_gradient_flow_layers(t.gf_layers, tmp_path / "a1", t.summary)),
                        ("a2", Fg.fig_hessian_density(t.density, tmp_path / "a2"))):
        png, pdf = drawn.paths
        assert png.stat().st_size > 2000 and pdf.stat().st_size > 1000, name
        assert any(s.startswith("no data") for s in _texts(drawn.figure)), name
    assert set(Fg.APPENDIX_FIGURES.values()) == set(Fg.CLAIM_APPENDIX_FIGURES["C6"])


def test_a_smooth_density_is_resolved_and_a_few_lanczos_nodes_are_not():
    grid = np.linspace(-2, 30, 200)
    assert density_peaks(grid, np.exp(-0.5 * ((grid - 1.0) / 1.5) ** 2)) == 1
    glitched = np.exp(-0.5 * ((grid - 1.0) / 1.5) ** 2)
    glitched[::7] = 1e-300                  # a tail written as 1e-300 at single points does not split a peak
    assert density_peaks(grid, glitched) == 1
    assert density_peaks(*spiky_density()) > MAX_RESOLVED_PEAKS
    status = density_resolution(density_table(*spiky_density()))
    assert len(status) == 4 and not status["resolved"].any()


def test_fig5_draws_the_density_only_where_it_is_resolved(tmp_path):
    hess, smooth, _ = make_trainability()
    drawn = Fg.fig_hessian(hess, smooth, tmp_path / "smooth")
    assert [ax for ax in drawn.figure.axes if "spectral density" in ax.get_title()]
    spiky = density_table(*spiky_density(), methods=("random", "snip"), seeds=(0, 1))
    drawn = Fg.fig_hessian(hess, spiky, tmp_path / "spiky")
    assert not [ax for ax in drawn.figure.axes if "spectral density" in ax.get_title()]
    assert "appendix figure A2" in drawn.figure.get_suptitle()
    appendix = Fg.fig_hessian_density(spiky, tmp_path / "a2")
    assert sum("not resolved" in ax.get_title() for ax in appendix.figure.axes) == 4     # 2 methods × 2 times


def test_fig5_draws_every_seed_on_linear_axes_and_shows_a_negative_trace(tmp_path):
    hess, dens, _ = make_trainability(seeds=(0, 1, 2))
    hess = hess.copy()
    start_trace = (hess["kind"] == "trace") & (hess["when"] == "init")
    hess.loc[start_trace, "value"] = -3000.0 - 100 * hess.loc[start_trace, "seed"]     # negative at the start
    drawn = Fg.fig_hessian(hess, dens, tmp_path / "h")
    ax = next(a for a in drawn.figure.axes if a.get_title().startswith("Trace at the start"))
    assert ax.get_yscale() == "linear"
    values = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])
    assert sorted(values) == sorted(hess.loc[start_trace, "value"])        # every seed, no mean in its place
    assert ax.get_ylim()[1] >= 0                                             # 0 is on the axis: the sign shows
    assert "(own y-scale)" in ax.get_title()                                 # 3000 against 160 after training
    tops = [a for a in drawn.figure.axes if a.get_title().startswith("Top eigenvalue")]
    assert len(tops) == 2 and tops[0].get_ylim() == tops[1].get_ylim()      # comparable: one scale


def test_fig4_is_c6s_measure_per_run_for_sp_and_ip(tmp_path):
    history = make_history(epochs=3)
    history = pd.concat([history, history[history["repr"] == "ip"].assign(repr=T.EQUAL_STORAGE)])
    runs = gf_per_run(history)
    assert set(runs["repr"]) == {"sp", "ip"}
    one = runs[(runs["method"] == "snip") & (runs["repr"] == "ip") & (runs["seed"] == 1)]["gf"].item()
    trained = history[(history["method"] == "snip") & (history["repr"] == "ip") & (history["seed"] == 1)
                      & (history["epoch"] > 0)]
    assert one == pytest.approx(trained["gf"].mean())                    # epoch 0 (the start) left out
    drawn = Fg.fig_gradient_flow(history, pd.DataFrame(), tmp_path / "gf")
    (ax,) = drawn.figure.axes
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
    assert "IP/SP 2.00" in [t.get_text().split("\n")[-1] for t in ax.get_xticklabels()]


def test_fig7_shows_ips_one_step_edge_relative_to_sp_with_its_sign(tmp_path):
    checks, steps, gf_masks = make_theorem1()
    edges = one_step_edges(steps)
    first = edges.sort_values("eta").groupby(["method", "sparsity"]).first().reset_index()
    expected = 100 * (gf_masks.set_index(["method", "sparsity"])["gf_ip"]
                      / gf_masks.set_index(["method", "sparsity"])["gf_sp"] - 1)
    got = first.set_index(["method", "sparsity"])["edge"]
    assert got.to_numpy() == pytest.approx(expected.loc[got.index].to_numpy(), rel=0.02)   # → GF ratio as η → 0
    big = edges[edges["eta"] == 1.0]
    assert (big["edge"] < 0).all() and (big["loss_ip"] > big["loss_sp"]).all()             # the sign is kept
    assert headline_sparsity(edges) == 0.98 and headline_sparsity(edges, 0.9) == 0.9
    drawn = Fg.fig_theorem1(checks, steps, tmp_path / "t", gf_masks=gf_masks)
    shared = [ax for ax in drawn.figure.axes if ax.get_title()[:3] in ("(b)", "(c)", "(d)")]
    assert len(shared) == 3 and len({ax.get_ylim() for ax in shared}) == 1
    assert all(ax.get_yscale() == "linear" for ax in shared)
    assert [ax.get_xscale() for ax in shared[1:]] == ["log", "log"]
