"""Independent runs spread over worker processes, with results that do not depend on the spread."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Sequence

import torch


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int = 1, threads: int = 1) -> list:
    """``[fn(*job) for job in jobs]``, over up to ``workers`` processes when ``workers`` > 1.

    For the stages that make many independent runs (sweep, ablation, trainability, Thm 1):
    each job seeds everything it draws from its own arguments, so for a given number of
    threads per process the results do not depend on how jobs are spread over processes
    (tests/test_pipeline_parallel.py).
    ``threads`` is the stage's thread budget: inline it is the caller's setting, spread
    over processes each of them uses ``threads // processes`` (at least 1) torch threads.
    ``fn`` must be a module-level function; each worker loads the prepared data once.
    Results come back in the order of ``jobs``; the first failing job's exception is raised.
    """
    jobs = list(jobs)
    if workers <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    processes = min(workers, len(jobs))
    ctx = multiprocessing.get_context("spawn")   # no fork after torch has started its thread pools
    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx, initializer=_init_worker,
                             initargs=(max(1, threads // processes),)) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
