#!/usr/bin/env python
"""Does PPSO's stage-1 criterion (the kernel distribution) pick descriptors that fit well?

A joint search fits a GAP for every descriptor it tries, so its trials are (descriptor,
validation loss) pairs. For each successful trial this computes the kernel statistics of
the trial's descriptor (``potune.descriptors.objective_check.objective_check``) and every stage-1 objective
(``kernel.objective.kind``: std_skew, std, weighted), plus the kernel-target alignment
(uses the energies, so not a PPSO criterion: a reference), and reports per criterion the
Spearman rank correlation with the validation loss and the loss of the trial it ranks first.
A criterion worth optimising in stage 1 has a clearly positive correlation and picks a trial
near the best loss.

    python benchmarks/stage1_objective.py --run results/paper/runs/paper-ppso-joint-n4 ...
    python benchmarks/stage1_objective.py            # runs the joint C-dimer searches first
    python benchmarks/stage1_objective.py --quick    # small searches (~3 min on 2 cores)

Writes <out>/stage1_objective.csv (one row per run and criterion) and
<out>/stage1_objective_trials.csv (one row per trial).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from potune.descriptors.objective_check import objective_check, objective_check_summary  # noqa: E402
from potune.report.paper import Context, ppso_dimer_config, run_search  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", nargs="*", default=None, help="finished joint GAP searches to check (run directories)")
    ap.add_argument("--quick", action="store_true", help="small searches when --run is not given")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--n-sample", type=int, default=3000, help="kernel rows sampled per descriptor")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [Path(r) for r in args.run] if args.run else []
    if not runs:
        ctx = Context(out=out / "stage1_objective_runs", cores=args.cores, quick=args.quick, shared=None)
        for n in (4, 6):
            run_dir, _ = run_search(ctx, ppso_dimer_config(ctx, "joint", n))
            runs.append(run_dir)
    summaries, trials = [], []
    for run in runs:
        t0 = time.time()
        df = objective_check(run, {"n_sample": args.n_sample})
        summ = objective_check_summary(df)
        print(f"\n{run.name}: {len(df)} trials, kernel statistics in {time.time() - t0:.0f} s")
        print(summ.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        summaries.append(summ.assign(run=run.name))
        trials.append(df.assign(run=run.name))
    pd.concat(summaries).to_csv(out / "stage1_objective.csv", index=False)
    pd.concat(trials).to_csv(out / "stage1_objective_trials.csv", index=False)
    print(f"\nwrote {out / 'stage1_objective.csv'} and {out / 'stage1_objective_trials.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
