"""The quick study: every stage of the pipeline on a small setting (presets/quick.yaml), in a
copy of the project under build/quick/ with its own git and DVC state, so that the committed
results and dvc.lock are never touched.  ``make quick`` runs it; its report is
build/quick/paper_figures/REPORT.md.

Usage: python -m study.quick [--out DIR] [--preset FILE]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .params import ParamsError, validate
from .sandbox import ROOT, copy_project, environment, tool

PRESET = ROOT / "presets" / "quick.yaml"
OUT = ROOT / "build" / "quick"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help="the copy (replaced if it exists; default build/quick)")
    ap.add_argument("--preset", type=Path, default=PRESET)
    args = ap.parse_args(argv)
    out = args.out.resolve()
    if out == ROOT or ROOT.is_relative_to(out):
        print(f"error: --out {out}: would replace the project itself; name a folder of its own", file=sys.stderr)
        return 2
    try:
        params = yaml.safe_load(args.preset.read_text())
        validate(params)
    except (OSError, yaml.YAMLError, ParamsError) as exc:
        print(f"error: {args.preset}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    if out.exists():
        if not (out / ".quick-study").exists():
            print(f"error: --out {out} exists and is not a quick study's folder; remove it or name another",
                  file=sys.stderr)
            return 2
        shutil.rmtree(out)
    start = time.monotonic()
    copy_project(out, params, commit=False)
    (out / ".quick-study").write_text("made by python -m study.quick; replaced by its next run\n")
    env = environment()
    print(f"quick study in {out} ({args.preset.name}):", flush=True)
    code = subprocess.run([tool("dvc"), "repro"], cwd=out, env=env).returncode
    minutes = (time.monotonic() - start) / 60
    if code:
        print(f"error: the quick study failed after {minutes:.1f} min (dvc repro exited {code}); its log is "
              f"above, its folder {out}", file=sys.stderr)
        return code
    print(f"quick study done in {minutes:.1f} min: {out / 'paper_figures' / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
