"""Warm-started inner searches (``snap.inner.warm_start``, #16) against cold ones, replayed on
the cached descriptor sets of a finished nested SNAP search.

The outer trials of the search (its ``trials.csv``, in trial order, with their recorded
descriptor hyperparameters and inner seeds) are replayed as they were proposed; only the inner
search changes. For each trial:

- cold (today): the inner search the run did, read from the trial's ``model/inner.csv``
  (``--check-cold`` solves one trial again with :func:`inner_search` and asserts the same
  losses);
- warm with k start points: the outer proposal hands the job the inner-best weights of the k
  best trials of the table the optimiser was told (lookahead ``--lookahead``: the iterations
  before n - lookahead), taken from this replay's own warm results
  (:func:`potune.fitters.snap.nested.warm_starts`); the job evaluates them first, then the
  same Sobol design as cold. The Sobol part of a warm search with ``s`` start points is the
  cold search's first ``evaluations - s`` rows (the start points are told as priors, so the
  Sobol sequence starts at its first point): only the start points are solved here, each
  with :func:`inner_search` (``start`` = that point, one evaluation) on the trial's cached
  blocks. ``--check-warm`` runs whole warm searches and asserts they equal this composition.

The outer points do not change with warm start here (the outer GP would see other losses
and propose other points), so this measures the inner search alone, on the run's path.

    PYTHONPATH=workflow OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/snap_warm.py \\
        /work/main/results/si-xpot-nested --k 1 2 3

Prints, per trial, the best inner (validation) loss cold and warm, and overall the best loss
with its energy and force RMSE; writes ``benchmarks/results/snap_warm.csv``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from potune.fitters.snap import nested  # noqa: E402
from potune.fitters.snap.descriptors import load_blocks, load_valid_blocks  # noqa: E402
from potune.io import read_yaml  # noqa: E402


def descriptor_dirs(run: Path) -> list[tuple[dict, Path]]:
    """``(spec, folder)`` of every cached descriptor set of fold 0."""
    out = []
    for d in sorted((run / "descriptors" / "fold0").iterdir()):
        meta = json.loads((d / "meta.json").read_text())
        if meta.get("status") == "ok":
            out.append((meta["spec"], d))
    return out


def find_dir(dirs: list[tuple[dict, Path]], hp: dict) -> Path:
    for spec, d in dirs:
        if all(math.isclose(float(spec[n]), float(hp[n]), rel_tol=1e-9) for n in ("rcutfac", "rfac0")):
            return d
    raise KeyError(f"no cached descriptors for rcutfac {hp['rcutfac']}, rfac0 {hp['rfac0']}")


def best_of(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["status"] == "ok" and math.isfinite(r["loss"])]
    return min(ok, key=lambda r: r["loss"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a finished nested SNAP search (its results folder)")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 2, 3], help="warm-start counts to replay")
    ap.add_argument("--lookahead", type=int, default=1, help="optimizer.lookahead of the run")
    ap.add_argument("--trials", type=int, default=None, help="only the first N trials")
    ap.add_argument("--check-cold", type=int, default=1, help="trials solved again cold, checked equal")
    ap.add_argument("--check-warm", type=int, default=1, help="whole warm searches (k = max --k) checked")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "snap_warm.csv")
    args = ap.parse_args()

    run = args.run
    trials = pd.read_csv(run / "trials.csv").sort_values(["iteration", "trial"], kind="stable")
    if args.trials:
        trials = trials.head(args.trials)
    dirs = descriptor_dirs(run)
    sim: dict[int, list[dict]] = {k: [] for k in args.k}  # the replayed (warm) trial tables
    cache: dict[tuple, dict] = {}  # (descriptor dir, start point) -> solved row
    out_rows = []
    checked_cold = checked_warm = 0
    t_start = time.monotonic()
    n_solves = 0
    for tr in trials.to_dict("records"):
        prop = read_yaml(run / f"iter{tr['iteration']}" / "proposals" / f"{tr['trial']}.yaml")
        inner, seed = prop["inner"], int(prop["seed"])
        hp = {**(prop.get("fixed") or {}), **prop["point"]}
        cold = pd.read_csv(run / f"iter{tr['iteration']}" / tr["trial"] / "fold0" / "model" / "inner.csv")
        cold_rows = cold.to_dict("records")
        total = int(inner["evaluations"])
        ddir = find_dir(dirs, hp)
        _, blocks = load_blocks(ddir)
        vblocks = load_valid_blocks(ddir)
        if checked_cold < args.check_cold:
            _, rows = nested.inner_search(blocks, vblocks, hp, inner, seed)
            n_solves += len(rows)
            assert np.allclose([r["loss"] for r in rows], cold["loss"], rtol=1e-9, atol=0), "cold replay differs"
            checked_cold += 1
        cb = best_of(cold_rows)
        rec = {
            "trial_id": tr["trial_id"],
            "rcutfac": hp["rcutfac"],
            "rfac0": hp["rfac0"],
            "cold_loss": cb["loss"],
            "cold_energy_rmse_mev": cb["energy_rmse_mev"],
            "cold_force_rmse": cb["force_rmse"],
            "cold_best_index": cb["inner_trial"],
        }
        for k in args.k:
            told = [r for r in sim[k] if r["iteration"] <= tr["iteration"] - 1 - args.lookahead]
            starts = nested.warm_starts(pd.DataFrame(told) if told else None, {**inner, "warm_start": k})
            start_rows = []
            for s in starts:
                key = (str(ddir), tuple(sorted((n, repr(v)) for n, v in s.items())))
                if key not in cache:
                    _, rows = nested.inner_search(blocks, vblocks, hp, {**inner, "start": [s], "evaluations": 1}, seed)
                    n_solves += 1
                    cache[key] = rows[0]
                start_rows.append(cache[key])
            rows = [*start_rows, *cold_rows[: total - len(start_rows)]]
            if starts and k == max(args.k) and checked_warm < args.check_warm:
                _, full = nested.inner_search(blocks, vblocks, hp, {**inner, "start": starts}, seed)
                n_solves += len(full)
                assert np.allclose([r["loss"] for r in full], [r["loss"] for r in rows], rtol=1e-9, atol=0), (
                    "warm composition differs from a whole warm search"
                )
                checked_warm += 1
            b = best_of(rows)
            names = list(inner["space"])
            sim[k].append(
                {
                    "iteration": tr["iteration"],
                    "trial": tr["trial"],
                    "status": "ok",
                    "loss": b["loss"],
                    **{n: b[n] for n in names},
                }
            )
            rec.update(
                {
                    f"warm{k}_loss": b["loss"],
                    f"warm{k}_energy_rmse_mev": b["energy_rmse_mev"],
                    f"warm{k}_force_rmse": b["force_rmse"],
                    f"warm{k}_n_start": len(start_rows),
                    f"warm{k}_best_is_start": any(b is r for r in start_rows),
                }
            )
        out_rows.append(rec)
        line = f"{tr['trial_id']:>6} rcut {hp['rcutfac']:.3f} rfac0 {hp['rfac0']:.3f}  cold {cb['loss']:.5f}"
        line += "".join(
            f"  warm{k} {rec[f'warm{k}_loss']:.5f}{'*' if rec[f'warm{k}_best_is_start'] else ' '}" for k in args.k
        )
        print(line, flush=True)
    df = pd.DataFrame(out_rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    print(
        f"\n{len(df)} trials, {n_solves} solves in {time.monotonic() - t_start:.0f} s "
        f"(checked: {checked_cold} cold, {checked_warm} warm); * = a start point was the inner best"
    )
    modes = ["cold", *[f"warm{k}" for k in args.k]]
    print(
        f"{'mode':>6} {'best loss':>10} {'E meV/at':>9} {'F eV/A':>8} {'trial':>6} {'mean loss':>10} "
        f"{'median':>8} {'better/worse vs cold':>21}"
    )
    for m in modes:
        i = int(df[f"{m}_loss"].idxmin())
        cmp = (
            ""
            if m == "cold"
            else f"{int((df[f'{m}_loss'] < df['cold_loss'] - 1e-12).sum())}/"
            f"{int((df[f'{m}_loss'] > df['cold_loss'] + 1e-12).sum())}"
        )
        print(
            f"{m:>6} {df.loc[i, f'{m}_loss']:10.5f} {df.loc[i, f'{m}_energy_rmse_mev']:9.3f} "
            f"{df.loc[i, f'{m}_force_rmse']:8.4f} {df.loc[i, 'trial_id']:>6} {df[f'{m}_loss'].mean():10.5f} "
            f"{df[f'{m}_loss'].median():8.5f} {cmp:>21}"
        )
    pos = df["cold_best_index"]
    print(
        f"cold: the inner best is among the first 5 of 20 in {int((pos < 5).sum())} trials, "
        f"the last 5 in {int((pos >= 15).sum())} (of {len(df)})"
    )


if __name__ == "__main__":
    main()
