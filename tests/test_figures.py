"""Every figure, drawn from fixed small tables, checked for what a reader notices first: an
empty panel, a legend cut off at the figure's edge, tick labels written over each other,
non-integer epoch ticks.  Figures that still fail a check are listed in ``KNOWN`` with the
check they fail; a figure fixed since must leave the list (the test says so)."""
from __future__ import annotations

import itertools

import matplotlib
import pytest

from analysis import figures as Fg
from analysis import tables as T
from test_analysis import (FIGURE_CALLS, equal_storage_runs, make_axis, make_history, make_runs, make_sweep,
                           make_tables)

matplotlib.use("Agg")

#: (figure, check) pairs that fail today, each to be fixed in the figure, not here
KNOWN: set[tuple[str, str]] = set()
MAX_PANELS = {"hessian": 6}
#: the appendix figures (analysis.figures.APPENDIX_FIGURES), drawn and checked like the others
APPENDIX_CALLS = {
    "gradient_flow_layers": lambda t, p: Fg.fig_gradient_flow_layers(t.gf_layers, p, t.summary),
    "hessian_density": lambda t, p: Fg.fig_hessian_density(t.density, p),
}
ALL_CALLS = {**FIGURE_CALLS, **APPENDIX_CALLS}


def _renderer(fig):
    """A renderer with the figure laid out as it was saved (a closed figure gets a new Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def empty_axes(fig) -> list[str]:
    """Visible axes with nothing drawn in them (no line, patch, collection, image or text)."""
    empty = []
    for ax in fig.axes:
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        drawn = [*ax.lines, *ax.collections, *ax.images, *ax.texts, *[p for p in ax.patches if p.get_visible()]]
        if not drawn:
            empty.append(ax.get_title() or ax.get_label() or "untitled")
    return empty


def legends_outside(fig) -> list[str]:
    """Legends whose box reaches beyond the figure."""
    renderer = _renderer(fig)
    box = fig.bbox
    out = []
    for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]:
        b = legend.get_window_extent(renderer)
        if b.x0 < box.x0 - 1 or b.x1 > box.x1 + 1 or b.y0 < box.y0 - 1 or b.y1 > box.y1 + 1:
            out.append(" / ".join(t.get_text() for t in legend.get_texts())[:60])
    return out


def overlapping_ticks(fig) -> list[str]:
    """Pairs of tick labels of one axis whose boxes overlap."""
    renderer = _renderer(fig)
    bad = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in labels]
            for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
                if ba.overlaps(bb) and ba.width > 0 and bb.width > 0:
                    bad.append(f"{ax.get_title()[:30]}: {a!r} / {b!r}")
    return bad


def non_integer_epoch_ticks(fig) -> list[str]:
    """Epoch axes with ticks that are not whole epochs."""
    bad = []
    for ax in fig.axes:
        if "epoch" in ax.get_xlabel().lower():
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            if any(abs(t - round(t)) > 1e-9 for t in ticks):
                bad.append(ax.get_title()[:40])
    return bad


def panel_count(name: str, fig) -> list[str]:
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    limit = MAX_PANELS.get(name)
    return [f"{len(visible)} panels > {limit}"] if limit is not None and len(visible) > limit else []


CHECKS = {
    "no empty axes": lambda name, fig: empty_axes(fig),
    "legend inside the figure": lambda name, fig: legends_outside(fig),
    "tick labels overlap": lambda name, fig: overlapping_ticks(fig),
    "integer epoch ticks": lambda name, fig: non_integer_epoch_ticks(fig),
    "panel count": panel_count,
}


#: ResNet-20 (width 16) with one FB per conv layer: prunable entries and FB entries (STUDY_SPEC section 6)
PRUNABLE, FB_ENTRIES = 270_608, 1_539


def with_study_counts(runs):
    """Kept, FB and stored entries of ResNet-20 at each run's sparsity: SP stores its kept weights, IP its kept
    coefficients plus the FB entries, IP_eq as much as SP in all (fewer coefficients by the FB entries); an IP_eq
    point whose FB entries exceed the budget is infeasible, recorded with its reason and no accuracy."""
    import numpy as np

    runs = runs.copy()
    budget = ((1 - runs["sparsity"].astype(float)) * PRUNABLE).round()
    eq = runs["repr"] == T.EQUAL_STORAGE
    fb = np.where(runs["repr"] == "sp", 0, FB_ENTRIES)
    runs["kept_params"] = np.where(eq, budget - FB_ENTRIES, budget)
    runs["fb_overhead_params"] = fb
    runs["stored_params"] = runs["kept_params"] + fb
    infeasible = eq & (runs["kept_params"] < 0)
    runs["infeasible"] = np.where(infeasible, "the FB entries exceed the budget", "")
    runs.loc[infeasible, ["test_acc", "train_acc", "gap_acc", "kept_params", "stored_params"]] = np.nan
    return runs


def study_like_sweep():
    """The sweep as the default study writes it: SNIP and one more method, SP, IP and IP_eq at every sweep
    sparsity and the headline's, IP_eq infeasible at 0.995."""
    import pandas as pd

    sweep = make_sweep(sparsities=(0.9, 0.95, 0.98, 0.99, 0.995))
    eq = sweep[sweep["repr"] == "ip"].assign(repr=T.EQUAL_STORAGE)
    eq["test_acc"] -= 0.015 + 0.004 * eq["seed"]
    return with_study_counts(pd.concat([sweep, eq], ignore_index=True))


def study_like_ablation(summary):
    """The ablation table as the aggregate stage writes it (:func:`analysis.collect.ablation_table`): the
    ablation's own arms, plus SP, the main IP runs under their FB-init and sharing names, the main IP_eq runs as
    ``fair_budget`` and the dense runs, all from ``summary``."""
    from types import SimpleNamespace

    import pandas as pd

    from analysis.collect import ablation_table
    arms = [make_runs(ip_shift=shift, ip_wobble=0.004).query("method == 'snip' and repr == 'ip'").assign(variant=v)
            for v, shift in (("fb_init=dct", 0.06), ("fb_init=random_orthogonal", 0.04), ("share=network", 0.03),
                             ("share=network,fair_budget", 0.01))]
    rows = with_study_counts(pd.concat(arms, ignore_index=True)).to_dict("records")
    return ablation_table(rows, summary, "snip", SimpleNamespace(fb_init="spatial", share="layer"), seeds=(0, 1, 2))


def study_like_tables() -> T.Tables:
    """The analysis tests' tables with what the default study has: three representations with ResNet-20's stored
    counts, one epoch of history, the sweep with IP_eq (infeasible at its highest sparsity), the ablation as the
    aggregate stage builds it, the training-length axis beside the 1-epoch headline, and the FB-overhead table of
    the paper's networks as the aggregate stage writes it."""
    import pandas as pd

    from ip.reference import fb_overhead_table
    costs = pd.DataFrame([{"share": share, **row} for share in ("layer", "network")
                          for row in fb_overhead_table(share)])
    runs = equal_storage_runs()
    runs = with_study_counts(runs[~((runs["method"] == "dense") & (runs["repr"] == T.EQUAL_STORAGE))])
    return make_tables(summary=runs, sweep=study_like_sweep(), history=make_history(epochs=1),
                       costs_reference=costs, axis=make_axis(head=1), ablation=study_like_ablation(runs))


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    t = study_like_tables()
    out = tmp_path_factory.mktemp("figures")
    return {name: call(t, out / name).figure for name, call in ALL_CALLS.items()}


def test_every_figure_is_checked():
    assert set(FIGURE_CALLS) == set(Fg.FIGURES)
    assert set(APPENDIX_CALLS) == set(Fg.APPENDIX_FIGURES)


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("name", [*Fg.FIGURES, *Fg.APPENDIX_FIGURES])
def test_figure(drawn, name, check):
    problems = CHECKS[check](name, drawn[name])
    if (name, check) in KNOWN:
        assert problems, f"{name} passes '{check}' now: remove it from KNOWN"
        pytest.xfail(f"{name}: {check}: {problems[:3]}")
    assert not problems, f"{name}: {check}: {problems[:5]}"


def test_the_checks_catch_what_they_look_for(tmp_path):
    """Each check fails on a figure made to have its defect."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2)
    a.plot([0, 1], [0, 1])
    assert empty_axes(fig) == ["untitled"]
    b.set_xticks([0.0, 0.001])
    b.set_xticklabels(["a long tick label", "another long label"])
    b.plot([0, 1], [0, 1])
    assert overlapping_ticks(fig)
    a.set_xlabel("epoch")
    a.set_xticks([0.5, 1.5])
    assert non_integer_epoch_ticks(fig)
    fig.legend(handles=a.lines, labels=["x"], loc="center left", bbox_to_anchor=(0.95, 0.5))
    assert legends_outside(fig)
    plt.close(fig)
    assert T.REPRS[0] == "sp"


def test_sweep_figures_say_how_many_seeds_each_sparsity_has():
    import pandas as pd

    from analysis.plots.accuracy import seeds_per_sparsity
    rows = [{"sparsity": s, "seed": k} for s in (0.9, 0.95) for k in range(3)] + \
           [{"sparsity": 0.98, "seed": k} for k in range(5)] + [{"sparsity": 0.0, "seed": k} for k in range(5)]
    assert seeds_per_sparsity(pd.DataFrame(rows)) == "seeds: 3 at 0.9, 0.95; 5 at 0.98"
    assert seeds_per_sparsity(pd.DataFrame(rows[:6])) == "3 seeds at every sparsity"


def test_a_figure_drawn_twice_writes_the_same_bytes(tmp_path):
    """No creation date in the PDF: re-running the figures stage on unchanged tables leaves
    every file (and so dvc.lock and git) unchanged."""
    import matplotlib.pyplot as plt

    from analysis.plots.style import save

    for name in ("a", "b"):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        save(fig, tmp_path / name / "fig")
    for ext in ("png", "pdf"):
        assert (tmp_path / "a" / f"fig.{ext}").read_bytes() == (tmp_path / "b" / f"fig.{ext}").read_bytes()
    assert b"/CreationDate" not in (tmp_path / "a" / "fig.pdf").read_bytes()


def _headline_beyond_the_sweep():
    """A sweep of 3 seeds at 0.9–0.99 (0.98 the headline) plus main runs of seeds 3 and 4 at 0.98 whose IP leads
    SP by far more (as the main runs' extra seeds do): C2's slope leaves seeds 3 and 4 out (one point each)."""
    import pandas as pd

    from test_analysis import HEADLINE
    sweep = make_sweep(0.0, 0.06)
    extra = make_runs(ip_shift=0.5, noise=0.003, methods=("random", "snip"), sparsity=HEADLINE, seeds=(3, 4))
    extra["test_acc"] -= 0.2      # as make_sweep shifts its third sparsity
    return T.normalise_table("sweep", pd.concat([sweep, extra], ignore_index=True))


def test_figs_2_and_13_draw_at_the_headline_sparsity_the_runs_of_c2s_slope(tmp_path):
    """At the headline sparsity, where the main runs have more seeds than the sweep, fig. 2's mean IP−SP, its
    points, fig. 13's mean accuracies and the storage sentence are over the seeds of C2's slope, not over every
    main run; the titles say which seeds are drawn."""
    import numpy as np

    from analysis.claims.accuracy import decades, slope_points, slope_runs
    from analysis.plots.storage import storage_points, storage_view_sentence
    from analysis.plots.style import COLORS
    from test_analysis import HEADLINE, claim

    sweep = _headline_beyond_the_sweep()
    c2 = claim(make_tables(sweep=sweep), "C2")
    slope_seeds = set(slope_points(sweep, "random", "ip")[2].index)
    assert slope_seeds == {0, 1, 2}
    drawn, untested = slope_runs(sweep)
    assert not untested
    at_head = drawn[np.isclose(drawn["sparsity"], HEADLINE)]
    assert set(at_head["seed"]) == slope_seeds and set(drawn["seed"]) == slope_seeds
    slope_mean = c2.numbers[f"random.adv_mean@{HEADLINE:g}"]
    every_run = T.paired(sweep[np.isclose(sweep["sparsity"], HEADLINE) & (sweep["method"] == "random")],
                         "test_acc")["diff"].mean()
    assert abs(every_run - slope_mean) > 0.1          # the check can tell the two apart

    fig2 = Fg.fig_sweep(sweep, tmp_path / "sweep").figure
    random = next(ax for ax in fig2.axes if ax.get_title() == "random")
    x_head = float(decades(HEADLINE))
    mean_line = next(line for line in random.lines if len(line.get_xdata()) == 4)
    head = int(np.argmin(np.abs(np.asarray(mean_line.get_xdata(), float) - x_head)))
    assert mean_line.get_ydata()[head] == pytest.approx(100 * slope_mean)
    points = np.concatenate([c.get_offsets() for c in random.collections if len(c.get_offsets())])
    assert np.isclose(points[:, 0], x_head).sum() == len(slope_seeds)
    assert "seeds 0–2 at every sparsity, as C2's slope" in fig2.get_suptitle()
    assert "seeds 3, 4 left out" in fig2.get_suptitle()

    fig13 = Fg.fig_storage(sweep, make_tables().summary, tmp_path / "storage").figure
    random = next(ax for ax in fig13.axes if ax.get_title() == "random")
    ip = sweep[(sweep["method"] == "random") & (sweep["repr"] == "ip")]
    ip_head = ip[np.isclose(ip["sparsity"], HEADLINE)]
    expected = ip_head[ip_head["seed"].isin(slope_seeds)]["test_acc"].mean()
    ip_line = next(line for line in random.lines if len(line.get_xdata()) == 4 and line.get_linestyle() != "None"
                   and matplotlib.colors.same_color(line.get_color(), COLORS["ip"]))
    stored = float(ip_head["stored_params"].median())
    assert dict(zip(ip_line.get_xdata(), ip_line.get_ydata()))[stored] == pytest.approx(100 * expected)
    assert "seeds 0–2 at every sparsity, as C2's slope" in fig13.get_suptitle()

    sentence = storage_view_sentence(sweep, make_tables().summary)
    assert "seeds 0–2 at every sparsity, as C2's slope" in sentence
    point = storage_points(drawn).query("method == 'random' and repr == 'ip'")
    assert point.loc[np.isclose(point["sparsity"], HEADLINE), "n"].item() == len(slope_seeds)


def test_the_seeds_drawn_are_named_per_sparsity_where_they_differ():
    import pandas as pd

    from analysis.plots.accuracy import drawn_seeds, seed_list
    assert (seed_list([0, 1, 2]), seed_list([3, 4]), seed_list([0, 2, 5]), seed_list([1])) == \
        ("seeds 0–2", "seeds 3, 4", "seeds 0, 2, 5", "seed 1")
    rows = pd.DataFrame([{"method": "snip", "repr": "sp", "sparsity": s, "seed": k}
                         for s, seeds in ((0.9, (0, 1, 2)), (0.99, (0, 1))) for k in seeds])
    assert drawn_seeds(rows, rows) == ["seeds 0–2 at 0.9; seeds 0, 1 at 0.99, as C2's slope"]
    assert drawn_seeds(rows, rows, [("snip", "ip_eq")])[0].endswith(
        "as C2's slope where it has one (snip (IP_eq): no slope, every run drawn)")


def test_a_figure_narrower_than_its_title_and_legend_is_widened_to_fit_them(tmp_path):
    """One panel under a three-panel title: the saved figure is as wide as the title and the legend need, so
    nothing is cut at the canvas edge; a figure that fits keeps its size."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.lines import Line2D
    from PIL import Image

    from analysis.plots import style

    def drawn(title: str, legend: str, name: str):
        fig, ax = style.plt.subplots(figsize=(3.0, 2.0), layout="constrained")
        ax.plot([0, 1], [0, 1])
        fig.legend(handles=[Line2D([], [], label=legend)], loc="outside lower center", frameon=False)
        fig.suptitle(title)
        style.save(fig, tmp_path / name)
        canvas = FigureCanvasAgg(fig)                   # closed: draw it again to measure what was saved
        canvas.draw()
        renderer = canvas.get_renderer()
        boxes = [fig._suptitle.get_window_extent(renderer), fig.legends[0].get_window_extent(renderer)]
        return fig, boxes, Image.open(tmp_path / f"{name}.png").size

    fig, boxes, (width, _) = drawn("a title much longer than one narrow panel is wide " * 2, "a legend " * 12, "wide")
    assert fig.get_figwidth() > 3.0 and width > 3.0 * style.DPI
    for box in boxes:                                  # inside the canvas, on both sides
        assert box.x0 >= 0 and box.x1 <= fig.get_figwidth() * fig.dpi
    fig, _, (width, _) = drawn("short", "line", "narrow")
    assert fig.get_figwidth() == 3.0 and width == round(3.0 * style.DPI)
