#!/usr/bin/env python
"""Strategy 2 with the proxy stage (stage1.objective: proxy) against strategy 2 with PPSO's
kernel stage and strategy 1 (joint), at equal fit CPU time, on the C dimers (issue #18 item 3).

Every search is the real workflow (snakemake, real gap_fit) under PPSO Table 3's protocol
(:func:`potune.report.paper.ppso_dimer_config`: the paper's bounds, PSO with C1:C2 = 1:2 from a
random swarm, loss Gamma_E + Gamma_F / 30 on energies and forces, rcut_hard 5 A,
n_max = l_max = n), with smaller swarms and fewer iterations than the paper's (16 x 20,
16 x 20 + 20 x 10) so that the three searches finish in about 15 min per n on 2 cores:

- joint: ``--joint`` particles x iterations (default 8 x 10 = 80 full fits);
- two_stage kernel: stage 1 ``--stage1`` (8 x 10 kernel evaluations), stage 2 ``--stage2``
  (4 x 5 = 20 full fits);
- two_stage proxy: stage 1 the same swarm, each trial a proxy fit (``--proxy-structures``
  of the 24 training dimers, ``--proxy-sparse`` sparse points, delta 1, sigma_E 2 meV/atom,
  sigma_F 20 meV/A: PPSO's own settings for its Table 2 fits), stage 2 as above.

Reported per search: the best validation Gamma_E (meV/atom) and Gamma_F (meV/A) (the best
trial's E and F RMSE on the validation structures), the loss, the number of full GAP fits,
proxy fits and kernel evaluations, the fit CPU time (the sum of ``cpu_s`` of every gap_fit of
the search, stage 1 included, the refit of the best excluded: CPU seconds of the gap_fit
processes) and the search's wall time. And for each two-stage search, the joint search's best
after the same fit CPU time (its trials in order, the best so far when its summed fit CPU
reaches the two-stage search's total).

    PYTHONPATH=workflow nice -n 5 .venv/bin/python benchmarks/proxy_stage.py --n 4

``--data si`` runs the same three strategies on the shipped Zuo 2020 Si data instead
(:func:`si_config`: config/examples/two-stage-si.yaml fitted on energies and forces, GP in
strategy 1 and stage 2), where a full fit costs tens of seconds, not a quarter of one:

    PYTHONPATH=workflow .venv/bin/python benchmarks/proxy_stage.py --data si --joint 8x4 \
        --stage1 8x4 --stage2 4x2 --proxy-structures 50 --proxy-sparse 50 --out benchmarks/out/proxy_stage_si

``--optimizer bayes`` (dimers) runs strategy 1 and stage 2 with potune's default Bayesian search
instead of PPSO's swarm (the GP on log(loss), the GAP defaults as the first trial; run names
``...-bo-...``); stage 1 stays the swarm.

Writes <out>/proxy_stage.csv (one row per search) and <out>/proxy_stage_trials.csv (the joint
searches' trials with their cumulative fit CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from strategies import run_one  # noqa: E402

from potune.report.paper import Context, ppso_dimer_config  # noqa: E402
from potune.trials import read_table  # noqa: E402

STRATEGIES = ("joint", "kernel", "proxy")


def budget(text: str) -> tuple[int, int]:
    """``"8x10"`` -> (particles, iterations)."""
    a, b = text.lower().split("x")
    return int(a), int(b)


def proxy_tag(args) -> str:
    """'' for the default proxy fidelity, else a suffix naming it (runs and CSV files)."""
    ours = (args.proxy_structures, args.proxy_sparse, args.proxy_energy_only, args.proxy_delta)
    ours += (args.proxy_sigma_energy, args.proxy_sigma_force)
    if ours == (12, 10, False, 1.0, 0.002, 0.02):
        return ""
    return (
        f"-m{args.proxy_structures}-ns{args.proxy_sparse}-d{args.proxy_delta:g}"
        f"-se{args.proxy_sigma_energy:g}-sf{args.proxy_sigma_force:g}" + ("-eo" if args.proxy_energy_only else "")
    )


def si_config(strategy: str, n: int) -> dict:
    """A search on the shipped Zuo 2020 Si data (``--data si``): config/examples/two-stage-si.yaml
    (soap_turbo, rcut_hard 5 A, 200 CUR sparse points, stage-1 descriptor space, stage-2 delta
    and sigma_E), fitted on energies and forces with sigma_F searched too (0.02-0.3 eV/A, as
    config/config.yaml), loss 0.5 RMSE(dE/sqrt(N)) + 0.5 RMSE(dF), n_max = l_max = n; a
    Bayesian search in stage 2 and strategy 1 (GP, as the example), PSO in stage 1.
    ``joint`` searches the union of both spaces in one."""
    cfg = yaml.safe_load((ROOT / "config" / "examples" / "two-stage-si.yaml").read_text())
    for k in ("train", "test"):
        cfg["data"][k] = str(ROOT / cfg["data"][k])
    cfg["gap"]["energy_only"] = False
    cfg.pop("refit_forces", None)
    cfg["loss"] = {"kind": "weighted", "alpha": 0.5}
    cfg["fixed"] = {k: v for k, v in cfg["fixed"].items() if k != "sigma_force"} | {"n_max": n, "l_max": n}
    cfg["space"]["sigma_force"] = {"type": "real", "low": 0.02, "high": 0.3, "prior": "log-uniform"}
    cfg["optimizer"] = {"kind": "bayes", "seed": 0, "lookahead": 0}
    cfg["stage1"]["optimizer"] = {"kind": "pso"}
    if strategy == "joint":
        cfg["strategy"] = "joint"
        cfg["space"] = {**cfg["stage1"].pop("space"), **cfg["space"]}
        del cfg["stage1"]
    return cfg


def build_config(args, strategy: str, n: int, out: Path) -> dict:
    """One search of the comparison: PPSO Table 3's protocol (``--data dimers``) or the Si
    searches of :func:`si_config` (``--data si``), with this benchmark's budgets."""
    ctx = Context(out=out, cores=args.cores, quick=False, shared=None)
    if args.data == "si":
        cfg = si_config(strategy, n)
    else:
        cfg = ppso_dimer_config(ctx, "joint" if strategy == "joint" else "two_stage", n)
    tag = proxy_tag(args) if strategy == "proxy" else ""
    data = "" if args.data == "dimers" else f"{args.data}-"
    bo = "-bo" if args.data == "dimers" and args.optimizer == "bayes" else ""
    cfg["run_name"] = f"proxy-bench-{data}{strategy}{tag}{bo}-n{n}-s{args.seed}"
    cfg["results_dir"] = str(out / "runs")
    if bo:  # strategy 1 and stage 2 with potune's default search (GP on log(loss), GAP defaults first)
        cfg["optimizer"] = {"kind": "bayes"}
    cfg["optimizer"]["seed"] = args.seed
    cfg["kernel"] = {**cfg.get("kernel", {}), "figure": False, "similarity_curve": False}
    if strategy == "joint":
        cfg["optimizer"]["batch_size"], iters = budget(args.joint)
        cfg["stop"] = {"max_iterations": iters}
        return cfg
    p1, i1 = budget(args.stage1)
    p2, i2 = budget(args.stage2)
    cfg["stage1"]["optimizer"]["batch_size"] = p1
    cfg["stage1"]["stop"] = {"max_iterations": i1}
    cfg["optimizer"]["batch_size"] = p2
    cfg["stop"] = {"max_iterations": i2}
    cfg["stage1"]["objective"] = strategy
    if strategy == "proxy":
        cfg["stage1"]["proxy"] = {
            "max_structures": args.proxy_structures,
            "n_sparse": args.proxy_sparse,
            "energy_only": args.proxy_energy_only,
            "delta": args.proxy_delta,
            "sigma_energy": args.proxy_sigma_energy,
            "sigma_force": args.proxy_sigma_force,
            "seed": 0,
        }
    return cfg


def fit_records(run_dir: Path) -> pd.DataFrame:
    """Every search fit (stage 1's proxy fits and the trials' fits; not the refit) with its
    CPU and wall time, in the order the search made them (stage 1 first; iteration, trial)."""
    rows = []
    for stage, pattern in (("stage1", "stage1/iter*/t*/fit.json"), ("search", "iter*/t*/fold*/fit.json")):
        for f in run_dir.glob(pattern):
            it = next(p for p in f.parts if p.startswith("iter"))
            trial = next(p for p in f.parts if p.startswith("t") and p[1:].isdigit())
            d = json.loads(f.read_text())
            rows.append(
                {
                    "stage": stage,
                    "iteration": int(it[4:]),
                    "trial": trial,
                    "cpu_s": float(d.get("cpu_s", np.nan)),
                    "wall_s": float(d.get("wall_s", np.nan)),
                }
            )
    df = pd.DataFrame(rows)
    order = {"stage1": 0, "search": 1}
    return df.sort_values(["stage", "iteration", "trial"], key=lambda c: c.map(order) if c.name == "stage" else c)


def joint_curve(run_dir: Path) -> pd.DataFrame:
    """The joint search's trials in order with cumulative fit CPU and the best so far."""
    table = read_table(run_dir / "trials.csv").sort_values(["iteration", "trial"]).reset_index(drop=True)
    fits = fit_records(run_dir).set_index(["iteration", "trial"])["cpu_s"]
    table["cpu_s"] = [fits.get((int(r.iteration), r.trial), np.nan) for r in table.itertuples()]
    table["cum_cpu_s"] = table["cpu_s"].cumsum()
    loss = pd.to_numeric(table["loss"], errors="coerce").where(table["status"] == "ok")
    best_idx = [loss.iloc[: i + 1].idxmin() if loss.iloc[: i + 1].notna().any() else None for i in range(len(table))]
    table["best_loss"] = [loss[j] if j is not None else np.nan for j in best_idx]
    table["best_energy_rmse_mev"] = [table.at[j, "energy_rmse_mev"] if j is not None else np.nan for j in best_idx]
    table["best_force_rmse"] = [table.at[j, "force_rmse"] if j is not None else np.nan for j in best_idx]
    return table


def summarise(strategy: str, n: int, cfg: dict, res: dict) -> dict:
    run_dir = res["run_dir"]
    best = yaml.safe_load((run_dir / "best" / "best.yaml").read_text())
    fits = fit_records(run_dir)
    s1 = read_table(run_dir / "stage1" / "trials.csv") if strategy != "joint" else None
    table = read_table(run_dir / "trials.csv")
    return {
        "n": n,
        "strategy": "joint (1)" if strategy == "joint" else f"two_stage {strategy} (2)",
        "seed": cfg["optimizer"]["seed"],
        "gamma_e_mev_atom": best["energy_rmse_mev"],
        "gamma_f_mev_a": 1000.0 * best["force_rmse"],
        "loss": best["loss"],
        "full_fits": len(table),
        "proxy_fits": len(s1) if strategy == "proxy" else 0,
        "kernel_evals": len(s1) if strategy == "kernel" else 0,
        "fit_cpu_s": float(fits["cpu_s"].sum()),
        "fit_cpu_stage1_s": float(fits.loc[fits["stage"] == "stage1", "cpu_s"].sum()),
        "fit_wall_s": float(fits["wall_s"].sum()),
        "kernel_time_s": float(s1["kernel_time_s"].sum()) if strategy == "kernel" else 0.0,
        "wall_s": res["wall_s"],
        "stage1_best": yaml.safe_load((run_dir / "stage1" / "best.yaml").read_text())["trial_id"]
        if s1 is not None
        else "",
    }


def proxy_ranking(run_dir: Path, args, out: Path) -> dict:
    """How well the proxy ranks descriptors: every successful trial of a joint search (a
    descriptor and its full-fidelity validation loss) refitted at the proxy's fidelity (the
    subset, n_sparse and GAP settings of the proxy searches; the same gap_fit and validation
    library functions the workflow uses), then the Spearman correlation of proxy and full
    losses and the proxy's rank of the trial with the best full loss (as
    benchmarks/stage1_objective.py does for the kernel criteria)."""
    import scipy.stats

    from potune import data as D
    from potune.descriptors.soap import STAGE1_HYPERPARAMETERS, reset_soap_turbo_basis
    from potune.evaluate.predict import evaluate
    from potune.fitters import gap
    from potune.search.twostage import PROXY_HYPERPARAMETERS

    table = read_table(run_dir / "trials.csv")
    table = table[table["status"] == "ok"].reset_index(drop=True)
    work = out / "ranking" / run_dir.name
    work.mkdir(parents=True, exist_ok=True)
    frames = D.read_normalised(run_dir / "split" / "fold0" / "train.xyz")
    subset = work / "train.xyz"
    D.write_structures(subset, [frames[i] for i in D.training_subset(frames, args.proxy_structures, 0)])
    valid = D.read_normalised(run_dir / "split" / "fold0" / "valid.xyz")
    cfg = yaml.safe_load((run_dir / "run" / "config.yaml").read_text())
    proxy = {
        "n_sparse": args.proxy_sparse,
        "delta": args.proxy_delta,
        "sigma_energy": args.proxy_sigma_energy,
        "sigma_force": args.proxy_sigma_force,
    }
    assert set(proxy) == set(PROXY_HYPERPARAMETERS)
    settings = {**cfg["gap"], "energy_only": args.proxy_energy_only}
    losses, cpu = [], 0.0
    for r in table.to_dict("records"):
        hp = {k: v for k, v in r.items() if k in STAGE1_HYPERPARAMETERS or k in ("sparse_method",)}
        hp = {k: (int(v) if k in gap.INTEGER_HYPERPARAMETERS or k == "zeta" else v) for k, v in hp.items()}
        d = work / r["trial_id"]
        t0 = os.times()
        res = gap.fit({**hp, **proxy}, settings, subset, d, work / f"{r['trial_id']}.log", [6], seed=0)
        t1 = os.times()
        cpu += (t1.children_user + t1.children_system) - (t0.children_user + t0.children_system)
        if res.status != "ok":
            losses.append(np.nan)
            continue
        # soap_turbo keeps its radial basis between descriptors of one process: rebuild it
        reset_soap_turbo_basis(int(hp["n_max"]))
        m, _, _ = evaluate(gap.calculator(d), valid, "gamma", 0.5)
        losses.append(m["loss"])
    table["proxy_loss"] = losses
    table.to_csv(out / f"proxy_ranking_{run_dir.name}.csv", index=False)
    ok = table["proxy_loss"].notna()
    rho = scipy.stats.spearmanr(table.loc[ok, "proxy_loss"], table.loc[ok, "loss"]).statistic
    best = table["loss"].idxmin()
    rank = int((table.loc[ok, "proxy_loss"] < table.at[best, "proxy_loss"]).sum()) + 1
    pick = table.loc[table["proxy_loss"].idxmin()]
    return {
        "run": run_dir.name,
        "trials": int(ok.sum()),
        "spearman_rho": float(rho),
        "rank_of_best_trial": rank,
        "full_loss_of_proxy_pick": float(pick["loss"]),
        "best_full_loss": float(table.at[best, "loss"]),
        "median_full_loss": float(table["loss"].median()),
        "proxy_fit_cpu_s": cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=("dimers", "si"), default="dimers", help="C dimers (PPSO) or Zuo Si (shipped)")
    ap.add_argument("--n", type=int, nargs="+", default=[4], help="n_max = l_max (PPSO: 4 and 6)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--joint", default="8x10", help="strategy 1: particles x iterations")
    ap.add_argument("--stage1", default="8x10", help="stage 1 (kernel or proxy): particles x iterations")
    ap.add_argument("--stage2", default="4x5", help="stage 2: particles x iterations")
    ap.add_argument("--proxy-structures", type=int, default=12, help="proxy fits: training dimers (of 24)")
    ap.add_argument("--proxy-sparse", type=int, default=10, help="proxy fits: sparse points")
    ap.add_argument("--proxy-energy-only", action="store_true")
    ap.add_argument("--proxy-delta", type=float, default=1.0, help="proxy fits: delta (eV)")
    ap.add_argument("--proxy-sigma-energy", type=float, default=0.002, help="proxy fits: sigma_E (eV/atom)")
    ap.add_argument("--proxy-sigma-force", type=float, default=0.02, help="proxy fits: sigma_F (eV/A)")
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    ap.add_argument(
        "--optimizer",
        choices=("pso", "bayes"),
        default="pso",
        help="dimers: strategy 1 and stage 2 by PPSO's swarm (the paper's) or potune's default Bayesian search; "
        "stage 1 is the swarm either way",
    )
    ap.add_argument("--rank", action="store_true", help="also rank the joint searches' descriptors by the proxy")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "proxy_stage"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # the searches' jobs import this checkout's potune
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "workflow"), os.environ.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    rows, curves, rankings = [], [], []
    for n in args.n:
        joint = None
        for strategy in args.strategies:
            cfg = build_config(args, strategy, n, out)
            print(f"run {cfg['run_name']} ...", flush=True)
            res = run_one(cfg, out, args.cores)
            row = summarise(strategy, n, cfg, res)
            if strategy == "joint":
                joint = joint_curve(res["run_dir"])
                curves.append(joint.assign(n=n))
                if args.rank:
                    rk = proxy_ranking(res["run_dir"], args, out)
                    print(f"  proxy ranking of the joint search's descriptors: {rk}", flush=True)
                    rankings.append(rk)
                    pd.DataFrame(rankings).to_csv(out / f"proxy_ranking{proxy_tag(args)}.csv", index=False)
            rows.append(row)
            print(f"  {row}", flush=True)
        if joint is not None:
            for row in rows:
                if row["n"] != n or row["strategy"].startswith("joint"):
                    continue
                reached = joint[joint["cum_cpu_s"] <= row["fit_cpu_s"]]
                last = reached.iloc[-1] if len(reached) else None
                row["joint_fits_at_equal_cpu"] = len(reached)
                row["joint_gamma_e_at_equal_cpu"] = last["best_energy_rmse_mev"] if last is not None else np.nan
                row["joint_gamma_f_at_equal_cpu"] = 1000.0 * last["best_force_rmse"] if last is not None else np.nan
                row["joint_loss_at_equal_cpu"] = last["best_loss"] if last is not None else np.nan
            jrow = next(r for r in rows if r["n"] == n and r["strategy"].startswith("joint"))
            for row in rows:
                if row["n"] == n and not row["strategy"].startswith("joint"):
                    row["gamma_e_ratio_to_joint"] = row["gamma_e_mev_atom"] / jrow["gamma_e_mev_atom"]
                    row["gamma_f_ratio_to_joint"] = row["gamma_f_mev_a"] / jrow["gamma_f_mev_a"]
                    row["full_fit_ratio"] = jrow["full_fits"] / row["full_fits"]
        pd.DataFrame(rows).to_csv(out / f"proxy_stage{proxy_tag(args)}.csv", index=False)  # after each n
    df = pd.DataFrame(rows)
    tag = proxy_tag(args)
    if curves:
        pd.concat(curves, ignore_index=True)[
            [
                "n",
                "iteration",
                "trial",
                "loss",
                "cpu_s",
                "cum_cpu_s",
                "best_loss",
                "best_energy_rmse_mev",
                "best_force_rmse",
            ]
        ].to_csv(out / f"proxy_stage_trials{tag}.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(df.round(3).T.to_string())
    print(
        f"\nwritten: {out / f'proxy_stage{tag}.csv'}" + (f", {out / f'proxy_stage_trials{tag}.csv'}" if curves else "")
    )


if __name__ == "__main__":
    main()
