"""What `dvc repro` will run, and how long each stage should take on this machine.

``python -m pipeline.plan`` (``make repro`` starts with it) lists the stages a `dvc repro`
would run (from `dvc status` and the stages' graph), each with an estimate: the wall time of the stage's last record in
results/profile/ (kept in git with the results), scaled by how fast this machine runs a
training step of the study's model now against when the record was made (``probe_seconds``,
a short probe each record carries).  A stage without a record says so.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import PROFILE_DIR

#: channels, height, width and classes of each dataset (the probe draws random batches of it)
SHAPES = {"fashion_mnist": (1, 28, 28, 10), "cifar10": (3, 32, 32, 10), "cifar100": (3, 32, 32, 100),
          "tiny_imagenet": (3, 64, 64, 200), "imagenet": (3, 224, 224, 1000)}


def probe_seconds(p, steps: int = 5, warmup: int = 2) -> float:
    """Median wall seconds of one SGD step (forward, backward, update) of the study's dense model
    on a random batch of ``train.batch_size``, in one of the stage's worker processes' thread
    count; a second or two at the default's size."""
    from ip.models import get_model
    channels, height, width, classes = SHAPES[p.data.name]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, p.train.threads // max(1, p.train.workers)))
    try:
        gen = torch.Generator().manual_seed(0)
        model = get_model(p.model.name, num_classes=classes, in_channels=channels, width=p.model.width)
        x = torch.randn(p.train.batch_size, channels, height, width, generator=gen)
        y = torch.randint(0, classes, (p.train.batch_size,), generator=gen)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        times = []
        for i in range(warmup + steps):
            tic = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            if i >= warmup:
                times.append(time.perf_counter() - tic)
        return statistics.median(times)
    finally:
        torch.set_num_threads(threads)


def record_name(stage: str) -> str:
    """The results/profile/ record of a dvc.yaml stage (``train@snip`` -> ``train-snip``)."""
    name, _, item = stage.partition("@")
    kind = {"dense": "train-dense", "train": "train", "sweep": "sweep", "shuffle": "controls-shuffle",
            "lr_control": "controls-lr",
            "axis_dense": "axis-dense"}.get(name, name)
    return f"{kind}-{item}" if item else kind


#: stages whose output, when only it is missing, is rebuilt bit for bit (its md5 in dvc.lock
#: matches), so that the stages after it do not re-run
REBUILT_EXACTLY = ("prepare",)


def stages_to_run(targets: list[str] | None = None, repo_dir: str = ".") -> list[str]:
    """The stages `dvc repro` would run, dependencies first: every stage `dvc status` finds
    changed for a reason of its own (code, params, its outputs), and everything downstream of
    those; a stage of :data:`REBUILT_EXACTLY` whose output is only missing (a fresh clone) runs
    alone.  ``targets``: only these stages and what they depend on."""
    import networkx as nx
    from dvc.repo import Repo

    with contextlib.chdir(repo_dir), Repo(".") as repo:   # paths and names relative to the repository
        graph = repo.index.graph            # an edge: stage -> a stage it depends on
        names = {stage: getattr(stage, "name", None) or stage.addressing for stage in graph.nodes}
        maker = {str(out): names[stage] for stage in graph.nodes for out in stage.outs}
        address = {stage.addressing: names[stage] for stage in graph.nodes}
        status = {address.get(key, key): value for key, value in repo.status().items()}
        position = {address.get(stage.addressing, stage.addressing): i
                    for i, stage in enumerate(repo.index.stages)}   # dvc.yaml's order
    own, restore = set(), set()
    for name, entries in status.items():
        changes = [(kind, path) for entry in entries if isinstance(entry, dict) for kind, paths in entry.items()
                   for path in (paths if isinstance(paths, dict) else {paths: None})]
        upstream = [path for kind, path in changes if kind == "changed deps" and path in maker]
        other = [(kind, path) for kind, path in changes if not (kind == "changed deps" and path in maker)]
        if name in REBUILT_EXACTLY and other and all(kind == "changed outs" for kind, _ in other):
            restore.add(name)
        elif other or any(not status.get(maker[path]) for path in upstream):   # an output changed by hand
            own.add(name)
    by_name = {name: stage for stage, name in names.items()}
    run = set(own)
    for name in own:
        run |= {names[s] for s in nx.ancestors(graph, by_name[name])}   # ancestors: the stages depending on it
    run |= restore
    if targets:
        wanted = set(targets) | {names[s] for t in targets if t in by_name for s in nx.descendants(graph, by_name[t])}
        run &= wanted
    order = [names[s] for s in nx.lexicographical_topological_sort(graph.reverse(),
                                                                    key=lambda s: position.get(names[s], 0))]
    return [name for name in order if name in run]


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
        float(record["total_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def _scaled(record: dict, probe: float | None) -> tuple[float, str]:
    seconds, then = float(record["total_seconds"]), record.get("probe_seconds")
    if probe and then:
        return seconds * probe / then, f"record of {record.get('cpu', '?')}, x{probe / then:.2f}"
    return seconds, f"record of {record.get('cpu', '?')}, unscaled"


def estimate(stage: str, probe: float | None, profile_dir: Path = PROFILE_DIR) -> tuple[float | None, str]:
    """(seconds or None, where the number comes from) for one stage.  A stage of a matrix
    without a record of its own (``axis@12-2``) takes the mean of its siblings' records that
    differ in the last item only (``axis-12-0``, ``axis-12-1``: the same length, other seeds)."""
    name = record_name(stage)
    record = _read_record(profile_dir / f"{name}.json")
    if record is not None:
        return _scaled(record, probe)
    if "-" in stage.partition("@")[2]:
        prefix = name.rsplit("-", 1)[0]
        siblings = {path.stem: rec for path in sorted(profile_dir.glob(f"{prefix}-*.json"))
                    if "-" not in path.stem[len(prefix) + 1:] and (rec := _read_record(path)) is not None}
        if siblings:
            scaled = [_scaled(rec, probe) for rec in siblings.values()]
            return (sum(t for t, _ in scaled) / len(scaled),
                    "mean of " + ", ".join(f"{sib} ({label})" for sib, (_, label) in zip(siblings, scaled)))
    return None, "no record"


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def plan(stages: list[str], probe: float | None, profile_dir: Path = PROFILE_DIR) -> list[str]:
    """The lines :func:`main` prints."""
    if not stages:
        return ["dvc repro: every stage is up to date, nothing to run"]
    rows = [(stage, *estimate(stage, probe, profile_dir)) for stage in stages]
    width = max(len(s) for s in stages)
    lines = [f"dvc repro will run {len(stages)} stage(s); estimates from results/profile/, scaled by a "
             f"training-step probe ({probe:.3f} s/step here):" if probe else
             f"dvc repro will run {len(stages)} stage(s); estimates from results/profile/ (no probe):"]
    lines += [f"  {s:<{width}}  {clock(t) if t is not None else '   ?   '}  ({why})" for s, t, why in rows]
    known = [t for _, t, _ in rows if t is not None]
    missing = len(rows) - len(known)
    lines.append(f"  {'total':<{width}}  {clock(sum(known))}" + (f"  (+ {missing} stage(s) without a record)"
                                                                  if missing else ""))
    return lines


def lock_message(exc: Exception) -> str:
    """One line for a repository another dvc command holds: what is busy, who holds it, what to do."""
    lines = list(dict.fromkeys(line.strip() for line in str(exc).split("\n\n")[0].splitlines() if line.strip()))
    return (" ".join(lines) + "; wait until it ends (or, if no such process runs, remove .dvc/tmp/rwlock) "
            "and run this again")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", help="stages, as for dvc repro")
    ap.add_argument("--no-probe", action="store_true", help="the records' times unscaled")
    args = ap.parse_args(argv)
    from study.params import load_or_exit
    p = load_or_exit("params.yaml")
    from dvc.lock import LockError
    try:
        stages = stages_to_run(args.targets)
    except LockError as exc:
        print(f"error: {lock_message(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    probe = None if args.no_probe or not stages else probe_seconds(p)
    print("\n".join(plan(stages, probe)), flush=True)


if __name__ == "__main__":
    main()
