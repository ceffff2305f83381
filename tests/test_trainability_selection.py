"""The trainability params choose which main runs get Hessian spectra; every run keeps its
gradient flow and filters."""
import copy
from pathlib import Path

import yaml

from pipeline.trainability import gets_hessian
from study.params import validate

DEFAULT = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


def _params(**trainability):
    raw = copy.deepcopy(DEFAULT)
    raw["trainability"].update(trainability)
    return validate(raw)


def test_hessians_only_for_the_selected_seeds_methods_and_reprs():
    p = _params(seeds=[1], hessian_methods=["dense", "rigl"], hessian_reprs=["ip"])
    chosen = {(m, r, s) for m in p.run_methods for r in p.reprs_of(m) for s in p.seeds if gets_hessian(p, m, r, s)}
    assert chosen == {("dense", "ip", 1), ("rigl", "ip", 1)}


def test_null_selects_every_main_run():
    p = _params(seeds=None, hessian_methods=None, hessian_reprs=None)
    runs = [(m, r, s) for m in p.run_methods for r in p.reprs_of(m) for s in p.seeds]
    assert all(gets_hessian(p, *run) for run in runs) and len(runs) == len(p.seeds) * (2 + 3 * len(p.methods))
