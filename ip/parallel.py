"""Independent runs spread over worker processes, with results that do not depend on the spread."""
from __future__ import annotations

import multiprocessing
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Sequence, TextIO

import torch


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """One progress line over a stage's jobs: done/total, elapsed time and an estimate of the
    time left (elapsed / done x jobs left).  On a terminal (``stream``, default stderr) it is a
    tqdm bar; elsewhere (a log file, ``dvc repro`` in the background) one line per finished job on
    stdout, beside the runs' own lines, so that a log shows how far a stage is and how long it
    still needs (stderr stays for errors)."""

    def __init__(self, desc: str, total: int, stream: TextIO | None = None):
        self.desc, self.total, self.done = desc, total, 0
        self.stream = sys.stderr if stream is None else stream
        self.start = time.monotonic()
        self.bar = None
        if self.stream.isatty():
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="run", file=self.stream, dynamic_ncols=True,
                            bar_format="{desc}: {n}/{total} runs |{bar}| {elapsed} elapsed, {remaining} left")

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        eta = _clock(left) if self.done else "?"
        return f"{self.desc}: {self.done}/{self.total} runs, {_clock(elapsed)} elapsed, {eta} left"

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        else:
            print(self.line(), flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int = 1, threads: int = 1,
             desc: str | None = None) -> list:
    """``[fn(*job) for job in jobs]``, over up to ``workers`` processes when ``workers`` > 1.

    For the stages that make many independent runs (sweep, ablation, trainability, Thm 1):
    each job seeds everything it draws from its own arguments, so for a given number of
    threads per process the results do not depend on how jobs are spread over processes
    (tests/test_pipeline_parallel.py).
    ``threads`` is the stage's thread budget: inline it is the caller's setting, spread
    over processes each of them uses ``threads // processes`` (at least 1) torch threads.
    ``fn`` must be a module-level function; each worker loads the prepared data once.
    Results come back in the order of ``jobs``; the first failing job's exception is raised.
    ``desc``: show one :class:`Progress` line over the jobs under that name.
    """
    jobs = list(jobs)
    progress = Progress(desc, len(jobs)) if desc and jobs else None
    try:
        if workers <= 1 or len(jobs) <= 1:
            results = []
            for job in jobs:
                results.append(fn(*job))
                if progress:
                    progress.update()
            return results
        processes = min(workers, len(jobs))
        ctx = multiprocessing.get_context("spawn")   # no fork after torch has started its thread pools
        with ProcessPoolExecutor(max_workers=processes, mp_context=ctx, initializer=_init_worker,
                                 initargs=(max(1, threads // processes),)) as pool:
            futures = [pool.submit(fn, *job) for job in jobs]
            try:
                pending = set(futures)
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        f.result()   # the first failure ends the stage
                        if progress:
                            progress.update()
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    finally:
        if progress:
            progress.close()
