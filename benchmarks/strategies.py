#!/usr/bin/env python
"""joint vs two_stage (PPSO strategies) on the C dimers and on Zuo Si, and the throughput of
the kernel statistics.

Part 1 runs the real workflow (snakemake, real gap_fit) once per data set x strategy x seed
and reports, per run: GAP fits and wall time until the best validation loss first reaches a
common target (the 75th percentile of the final best losses of all runs of that data set),
the final best loss, validation errors (dimers, beside PPSO's ~0.6 meV/atom, ~15 meV/A) and
test errors (Si: refit as searched on energies and refit on energies + forces).

Part 2 times ``potune.descriptors.kernel.kernel_stats`` (M = min(3000, N) rows x N columns) against a
plain numpy matrix product of the same size (the limit): environments^2 per second.

    python benchmarks/strategies.py --quick            # ~30 min on 2 cores
    python benchmarks/strategies.py --throughput-only  # part 2 only

Writes <out>/strategies.csv, <out>/strategies_trials.csv, <out>/throughput.csv and
<out>/strategies.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from potune.descriptors.kernel import kernel_stats  # noqa: E402
from potune.search.optimizers import REGISTRY  # noqa: E402
from potune.trials import read_table  # noqa: E402

PPSO_DIMER = {"energy_rmse_mev": 0.6, "force_rmse": 0.015}


def build_config(dataset: str, strategy: str, seed: int, quick: bool, out: Path) -> dict:
    """A benchmark configuration from the example configs, with a budget for this run."""
    kind = "pso" if "pso" in REGISTRY else "bayes"
    if dataset == "dimers":
        name = "ppso-dimer-two-stage.yaml" if strategy == "two_stage" else "ppso-dimer-joint.yaml"
        cfg = yaml.safe_load((ROOT / "config" / "examples" / name).read_text())
        batch = 4 if quick else 16
        iters = 4 if quick else 10
        if strategy == "two_stage":
            iters2 = 2 if quick else 5  # stage 2: the GAP hyperparameters only, fewer fits
    else:
        cfg = yaml.safe_load((ROOT / "config" / "examples" / "two-stage-si.yaml").read_text())
        if strategy == "joint":
            cfg["strategy"] = "joint"
            cfg["space"] = {**cfg["stage1"]["space"], **cfg["space"]}
            cfg.pop("stage1")
        batch = 4
        iters = 2 if quick else 5
        iters2 = iters
    cfg["run_name"] = f"{dataset}-{strategy}-s{seed}"
    cfg["results_dir"] = str(out / "runs")
    cfg["optimizer"] = {**cfg["optimizer"], "kind": kind, "batch_size": batch, "seed": seed}
    if kind != "pso":
        cfg["optimizer"]["n_initial"] = batch
    cfg["stop"] = {"max_iterations": iters2 if strategy == "two_stage" else iters}
    if strategy == "two_stage":
        cfg["stage1"]["optimizer"] = (
            {"batch_size": batch, "n_initial": batch} if kind != "pso" else {"batch_size": batch}
        )
        cfg["stage1"]["stop"] = {"max_iterations": iters}
    for key in ("train", "test"):
        if cfg["data"].get(key):
            cfg["data"][key] = str(ROOT / cfg["data"][key])
    return cfg


def run_one(cfg: dict, out: Path, cores: int) -> dict:
    """Run one search (or reuse a finished one: ``<out>/runs/<run_name>.json`` records its
    start time and wall time)."""
    run_dir = Path(cfg["results_dir"]) / cfg["run_name"]
    meta = out / "runs" / f"{cfg['run_name']}.json"
    if meta.exists() and (run_dir / "summary.md").exists():
        return {"run_dir": run_dir, **json.loads(meta.read_text())}
    cfg_file = out / "configs" / f"{cfg['run_name']}.yaml"
    cfg_file.parent.mkdir(parents=True, exist_ok=True)
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    t0 = time.time()
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "snakemake"),
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--cores",
            str(cores),
            "--configfile",
            str(cfg_file),
            "--rerun-incomplete",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    wall = time.time() - t0
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "logs" / f"{cfg['run_name']}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{cfg['run_name']}: snakemake failed, see {out / 'logs' / (cfg['run_name'] + '.log')}")
    meta.write_text(json.dumps({"wall_s": wall, "t0": t0}))
    return {"run_dir": run_dir, "wall_s": wall, "t0": t0}


def trial_times(run_dir: Path, t0: float) -> pd.DataFrame:
    """Stage-2 / joint trials in completion order: seconds since start, loss, best so far."""
    table = read_table(run_dir / "trials.csv")
    done = []
    for r in table.to_dict("records"):
        v = run_dir / f"iter{int(r['iteration'])}" / r["trial"] / "fold0" / "valid.json"
        done.append(v.stat().st_mtime - t0)
    table = table.assign(done_s=done).sort_values("done_s").reset_index(drop=True)
    loss = pd.to_numeric(table["loss"], errors="coerce").where(table["status"] == "ok")
    table["fit_number"] = np.arange(1, len(table) + 1)
    table["best_so_far"] = loss.cummin()
    return table


def part1(args, out: Path) -> None:
    rows, trials = [], []
    for dataset in args.datasets:
        for seed in range(args.seeds):
            for strategy in ("joint", "two_stage"):
                cfg = build_config(dataset, strategy, seed, args.quick, out)
                print(f"run {cfg['run_name']} ({cfg['optimizer']['kind']}) ...", flush=True)
                res = run_one(cfg, out, args.cores)
                t = trial_times(res["run_dir"], res["t0"])
                best = yaml.safe_load((res["run_dir"] / "best" / "best.yaml").read_text())
                row = {
                    "dataset": dataset,
                    "strategy": strategy,
                    "seed": seed,
                    "optimizer": cfg["optimizer"]["kind"],
                    "gap_fits": len(t),
                    "wall_s": res["wall_s"],
                    "best_loss": best["loss"],
                    "valid_energy_rmse_mev": best["energy_rmse_mev"],
                    "valid_force_rmse": best["force_rmse"],
                }
                if strategy == "two_stage":
                    s1 = read_table(res["run_dir"] / "stage1" / "trials.csv")
                    row["stage1_trials"] = len(s1)
                    row["stage1_time_s"] = float(s1["kernel_time_s"].sum())
                tm = res["run_dir"] / "best" / "test_metrics.json"
                if tm.exists():
                    m = json.loads(tm.read_text())
                    row["test_energy_rmse_mev"], row["test_force_rmse"] = m["energy_rmse_mev"], m["force_rmse"]
                tf = res["run_dir"] / "best" / "forces" / "test_metrics.json"
                if tf.exists():
                    m = json.loads(tf.read_text())
                    row["test_forces_refit_energy_rmse_mev"], row["test_forces_refit_force_rmse"] = (
                        m["energy_rmse_mev"],
                        m["force_rmse"],
                    )
                rows.append(row)
                trials.append(
                    t.assign(dataset=dataset, strategy=strategy, seed=seed)[
                        ["dataset", "strategy", "seed", "fit_number", "done_s", "loss", "best_so_far"]
                    ]
                )
                print(f"  {row}", flush=True)
                pd.DataFrame(rows).to_csv(out / "strategies_partial.csv", index=False)
    df = pd.DataFrame(rows)
    tr = pd.concat(trials, ignore_index=True)
    for dataset in df["dataset"].unique():
        target = float(np.percentile(df.loc[df["dataset"] == dataset, "best_loss"], 75))
        for i in df.index[df["dataset"] == dataset]:
            t = tr[
                (tr["dataset"] == dataset) & (tr["strategy"] == df.at[i, "strategy"]) & (tr["seed"] == df.at[i, "seed"])
            ]
            hit = t[t["best_so_far"] <= target]
            df.loc[i, "target_loss"] = target
            df.loc[i, "fits_to_target"] = float(hit["fit_number"].iloc[0]) if len(hit) else np.nan
            df.loc[i, "time_to_target_s"] = float(hit["done_s"].iloc[0]) if len(hit) else np.nan
    df.loc[df["dataset"] == "dimers", "ppso_energy_rmse_mev"] = PPSO_DIMER["energy_rmse_mev"]
    df.loc[df["dataset"] == "dimers", "ppso_force_rmse"] = PPSO_DIMER["force_rmse"]
    df.to_csv(out / "strategies.csv", index=False)
    tr.to_csv(out / "strategies_trials.csv", index=False)
    cols = [
        "fits_to_target",
        "time_to_target_s",
        "gap_fits",
        "wall_s",
        "best_loss",
        "valid_energy_rmse_mev",
        "valid_force_rmse",
    ] + [
        c
        for c in (
            "test_energy_rmse_mev",
            "test_force_rmse",
            "test_forces_refit_energy_rmse_mev",
            "test_forces_refit_force_rmse",
        )
        if c in df
    ]
    print("\nmean (std) over seeds:")
    print(df.groupby(["dataset", "strategy"])[cols].agg(["mean", "std"]).round(4).T.to_string())
    return df, tr


def part2(args, out: Path) -> pd.DataFrame:
    sizes = [500, 1000, 2000, 5000, 10000] + ([] if args.quick else [20000, 40000])
    dim = 180  # soap_turbo n_max = l_max = 4, two species: (4 + 1) * 8 * 9 / 2
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        X = np.abs(rng.normal(size=(n, dim)))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        m = min(3000, n)
        S = X[:m]
        t_k = min(_timed(lambda: kernel_stats(X, 4, n_sample=3000, seed=0)) for _ in range(3))  # noqa: B023 (called at once)
        t_mm = min(_timed(lambda: S @ X.T) for _ in range(3))  # noqa: B023 (called at once)
        pairs = m * (n - 1)
        rows.append(
            {
                "n_env": n,
                "n_sample": m,
                "dim": dim,
                "pairs": pairs,
                "kernel_stats_s": t_k,
                "matmul_s": t_mm,
                "kernel_pairs_per_s": pairs / t_k,
                "matmul_pairs_per_s": m * n / t_mm,
                "ratio_to_matmul": t_k / t_mm,
            }
        )
        print(
            f"N = {n:6d}: kernel_stats {t_k:.3f} s ({pairs / t_k:.3g} pairs/s), numpy matmul {t_mm:.3f} s "
            f"({m * n / t_mm:.3g}/s), x{t_k / t_mm:.1f}",
            flush=True,
        )
    df = pd.DataFrame(rows)
    df.to_csv(out / "throughput.csv", index=False)
    return df


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def plot(out: Path, tr: pd.DataFrame | None, thr: pd.DataFrame | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [] if tr is None else list(tr["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets) + (thr is not None), figsize=(5 * (len(datasets) + 1), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for strategy, colour in (("joint", "tab:blue"), ("two_stage", "tab:red")):
            for seed, t in tr[(tr["dataset"] == ds) & (tr["strategy"] == strategy)].groupby("seed"):
                ax.step(
                    t["fit_number"],
                    t["best_so_far"],
                    where="post",
                    color=colour,
                    alpha=0.7,
                    label=strategy if seed == 0 else None,
                )
        ax.set_xlabel("GAP fits")
        ax.set_ylabel("best validation loss")
        ax.set_yscale("log")
        ax.set_title(ds)
        ax.legend()
    if thr is not None:
        ax = axes[0][-1]
        ax.loglog(thr["n_env"], thr["kernel_pairs_per_s"], "o-", label="kernel_stats")
        ax.loglog(thr["n_env"], thr["matmul_pairs_per_s"], "s--", label="numpy S @ X.T")
        ax.set_xlabel("environments N (M = min(3000, N))")
        ax.set_ylabel("environment pairs per second")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "strategies.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small budgets (about 30 min on 2 cores)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--datasets", nargs="+", default=["dimers", "si"], choices=["dimers", "si"])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--throughput-only", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "strategies"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tr = None
    if not args.throughput_only:
        _, tr = part1(args, out)
    thr = part2(args, out)
    plot(out, tr, thr)
    print(
        f"\nwritten under {out}: "
        + ("" if args.throughput_only else "strategies.csv, strategies_trials.csv, ")
        + "throughput.csv, strategies.png"
    )


if __name__ == "__main__":
    main()
