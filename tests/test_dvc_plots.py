"""dvc.yaml's top-level plots list exactly the runs of params.yaml, one panel per metric and method."""
from pathlib import Path

import yaml

from analysis.dvc_plots import METRICS, plots_section, with_plots

ROOT = Path(__file__).resolve().parents[1]


def test_dvc_yaml_plots_match_params():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    dvc_yaml = (ROOT / "dvc.yaml").read_text()
    assert dvc_yaml == with_plots(dvc_yaml, params), "run `python -m analysis.dvc_plots` after changing params"


def test_one_panel_per_metric_and_method_with_every_seed_of_both_reprs():
    panels = plots_section(["snip", "lt"], ["sp", "ip"], [0, 1, 2])
    assert len(panels) == len(METRICS) * 2
    (name, panel), = panels[0].items()
    assert name == "test_acc-snip"
    assert list(panel["y"]) == [f"results/runs/snip/{r}-s{s}/live/plots/metrics/test_acc.tsv"
                                for r in ("sp", "ip") for s in (0, 1, 2)]
    assert set(panel["y"].values()) == {"test_acc"}


def test_the_offline_page_template_inlines_vega_and_loads_nothing_from_the_network():
    """`dvc plots show` uses .dvc/plots_offline.html (`plots.html_template`): Vega, Vega-Lite and
    vega-embed inlined, no script fetched at view time, and DVC's placeholders in place."""
    import re

    from dvc_render.html import HTML

    from analysis.dvc_plots import OFFLINE_TEMPLATE, offline_template
    page = offline_template()
    assert "{plot_divs}" in page and "{scripts}" not in page      # no {scripts}: DVC's CDN links stay out
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert "window.vegaEmbed" in page and len(page) > 100_000
    html = HTML(page).with_element('<div id="p"></div>').embed()
    assert '<div id="p"></div>' in html and "{plot_divs}" not in html
    config = (ROOT / ".dvc" / "config").read_text()
    assert f"html_template = {OFFLINE_TEMPLATE.name}" in config
