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

    from analysis.dvc_plots import offline_template
    page = offline_template()
    assert "{plot_divs}" in page and "{scripts}" not in page      # no {scripts}: DVC's CDN links stay out
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert "window.vegaEmbed" in page and len(page) > 100_000
    html = HTML(page).with_element('<div id="p"></div>').embed()
    assert '<div id="p"></div>' in html and "{plot_divs}" not in html
    # the committed config does not name it: a clone where it was never written keeps DVC's page
    assert "html_template" not in (ROOT / ".dvc" / "config").read_text()


def test_plots_show_works_before_and_after_the_template_is_written(tmp_path):
    """`dvc plots show` in a clone without the template (DVC's own page), then with it (named in
    .dvc/config.local, which git ignores)."""
    import shutil
    import subprocess
    import sys

    from analysis.dvc_plots import OFFLINE_TEMPLATE, write_offline_template
    if shutil.which("dvc") is None and not (Path(sys.executable).parent / "dvc").exists():
        import pytest
        pytest.skip("dvc is not installed")
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "-q", "--no-scm"], cwd=tmp_path, check=True)
    shutil.copyfile(ROOT / ".dvc" / "config", tmp_path / ".dvc" / "config")
    (tmp_path / "acc.tsv").write_text("step\tacc\n0\t0.1\n1\t0.5\n")

    def show() -> str:
        out = subprocess.run([*dvc, "plots", "show", "acc.tsv", "-o", "page"], cwd=tmp_path,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return (tmp_path / "page" / "index.html").read_text()

    assert "cdn.jsdelivr" in show() or "<script src=" in show()       # DVC's page: Vega from a CDN
    write_offline_template(tmp_path)
    assert "html_template" in (tmp_path / ".dvc" / "config.local").read_text()
    page = show()
    assert "window.vegaEmbed" in page and (tmp_path / OFFLINE_TEMPLATE).exists()
