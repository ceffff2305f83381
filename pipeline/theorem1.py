"""Stage `theorem1`: the numerical checks of Thm 1 (docs/theorem1.md) on the SP mask of every
main method at the headline sparsity and of every sweep method at every sweep sparsity: the SP
network at the start of sparse training and its interspace twin with F = I and lambda = w."""
from __future__ import annotations

import pandas as pd

from analysis.collect import theorem1_tables
from ip.experiment import compute_masks, recalibrate
from ip.parallel import run_jobs
from ip.pruning import method_info
from ip.theory import run_theorem1

from .common import THEOREM1_DIR as OUT, load_run, setup, stage, write_json


def theorem1_case(p, method: str, sparsity: float, seed: int) -> dict:
    """All checks on one mask: a main method's SP mask at the headline sparsity (the one its
    run trained with; DST and GMP: the mask they ended with), or a sweep method's SP mask,
    computed here, at a sweep sparsity."""
    t = p.theorem1
    run = load_run(p, method, "sp", seed, sparsity)
    headline = sparsity == p.sparsity and method in p.run_methods
    if headline:
        model, masks = run.start()
        if method_info(method).has_train_hook:   # the masks it ended with
            masks = run.final_masks(model)
    else:
        model = run.new_model()
        masks, start = compute_masks(run.spec, model, run.data)
        if start is not None:
            model.load_state_dict(start)
    if p.trainability.bn_mode == "running":   # the same measurement as the trainability metrics
        recalibrate(model, run.spec, run.data)
    # every check on the headline masks; the sweep's masks skip the general-F comparison and
    # check fewer FB entries by finite differences, to keep the stage cheap
    result = run_theorem1(model, masks, run.data.metric_batches(t.batch_size), etas=t.etas, seed=seed,
                          fd_eps=t.fd_eps, fd_samples=t.fd_samples, bn_mode=p.trainability.bn_mode,
                          general_fb_init=t.general_fb_init if headline else None,
                          fd_entries_per_fb=t.fd_entries_per_fb if headline else t.sweep_fd_entries_per_fb)
    holds = result["summary"]["holds"]
    print(f"theorem1 {method} s={sparsity}: " + ", ".join(f"{k}={'ok' if v else 'FAILS'}" for k, v in holds.items()),
          flush=True)
    return {"rows": [{"method": method, "sparsity": sparsity, "seed": seed, **r} for r in result["rows"]],
            "summary": {"method": method, "sparsity": sparsity, "seed": seed, **result["summary"]}}


@stage
def main() -> None:
    p = setup()
    seed = p.theorem1.seed if p.theorem1.seed in p.seeds else p.seeds[0]
    jobs = [(p, method, p.sparsity, seed) for method in p.run_methods]
    jobs += [(p, method, sparsity, seed) for method in p.sweep.methods for sparsity in p.sweep.sparsities
             if sparsity != p.sparsity or method not in p.run_methods]
    results = run_jobs(theorem1_case, jobs, p.train.workers, p.train.threads, desc="theorem1")
    OUT.mkdir(parents=True, exist_ok=True)
    rows = pd.DataFrame([row for r in results for row in r["rows"]])
    rows.to_csv(OUT / "rows.csv", index=False)
    for name, table in theorem1_tables(rows).items():
        table.to_csv(OUT / f"{name}.csv", index=False)
    write_json(OUT / "theorem1.json", [r["summary"] for r in results])


if __name__ == "__main__":
    main()
