"""Nested vs joint SNAP search at equal CPU time (#16).

Both strategies search the same space: descriptor hyperparameters (``rcutfac``, ``rfac0``)
and weights (``eweight``, ``fweight``, optionally ``eweight[<ct>]`` per config_type),
sequentially (one trial at a time, one thread), until the same budget of seconds is used.

- joint: potune's Bayesian optimiser proposes every dimension; each trial computes its
  descriptors (continuous rcutfac/rfac0: always new) and solves once;
- nested: the outer optimiser proposes the descriptor dimensions only; each trial computes
  its descriptors and runs the inner search (``--inner`` solves, as in a fit job).

Every trial is scored by the validation loss from the validation fold's compressed blocks
(:func:`potune.fitters.snap.nested.validation_errors`, equal to LAMMPS validation to 1e-6,
tests/test_snap_nested.py), so no LAMMPS validation time is counted for either strategy.
The clock is the wall time of this single-threaded process and its descriptor subprocesses.

    .venv/bin/python benchmarks/snap_nested.py --quick --budget 120     # 60 structures
    .venv/bin/python benchmarks/snap_nested.py --budget 1800 --seeds 0 1 2

Writes a CSV (one row per trial: strategy, seed, elapsed, loss, best so far) and prints the
best loss of each strategy at the budget, the number of descriptor computations, the inner
solve time and the split of a nested trial's time (descriptors vs inner search).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from potune import data as D  # noqa: E402
from potune.fitters import snap  # noqa: E402
from potune.fitters.snap import nested  # noqa: E402
from potune.search.optimizers import make_optimizer  # noqa: E402
from potune.search.space import Space  # noqa: E402

DESC_SPACE = {
    "rcutfac": {"type": "real", "low": 4.0, "high": 5.5},
    "rfac0": {"type": "real", "low": 0.7, "high": 0.99},
}
WEIGHT_SPACE = {
    "eweight": {"type": "real", "low": 10.0, "high": 10000.0, "prior": "log-uniform"},
    "fweight": {"type": "real", "low": 0.1, "high": 10.0, "prior": "log-uniform"},
}


def descriptors(spec: dict, train: Path, valid: Path, work: Path) -> tuple[list, list, float]:
    t0 = time.monotonic()
    meta = snap.compute_descriptors(spec, train, work, work.with_suffix(".log"), valid_file=valid)
    if meta["status"] != "ok":
        raise RuntimeError(meta["reason"])
    _, blocks = snap.load_blocks(work)
    return blocks, snap.load_valid_blocks(work), time.monotonic() - t0


def run(strategy: str, seed: int, budget: float, fixed: dict, weights: dict, inner_n: int, train, valid, tmp: Path):
    space_cfg = DESC_SPACE if strategy == "nested" else {**DESC_SPACE, **weights}
    space = Space.from_config(space_cfg)
    opt = make_optimizer(space, {"kind": "bayes", "seed": seed, "n_initial": 5})
    inner = {
        "space": weights,
        **nested.INNER_DEFAULTS,
        "evaluations": inner_n,
        "loss": {"kind": "weighted", "alpha": 0.5},
    }
    rows, best = [], np.inf
    t_start = time.monotonic()
    k = 0
    while time.monotonic() - t_start < budget:
        point = space.to_dict(opt.ask(1)[0])
        hp = {**fixed, **point}
        spec = snap.descriptor_spec(hp, {})
        blocks, vblocks, t_desc = descriptors(spec, train, valid, tmp / f"{strategy}-{seed}-{k}")
        t1 = time.monotonic()
        if strategy == "nested":
            res, inner_rows = nested.inner_search(blocks, vblocks, hp, inner, seed=seed + 1000 * k)
            loss, used = res["loss"], res["params"]
            solve_ms = 1000 * float(np.median([r["solve_s"] for r in inner_rows]))
        else:
            coef, _ = snap.solve(blocks, snap.resolve_params(hp))
            loss, used = nested.validation_errors(coef, vblocks, "weighted", 0.5)["loss"], {}
            solve_ms = 1000 * (time.monotonic() - t1)
        t_fit = time.monotonic() - t1
        opt.tell([space.to_point(point)], [loss])
        best = min(best, loss)
        rows.append(
            {
                "strategy": strategy,
                "seed": seed,
                "trial": k,
                "elapsed_s": time.monotonic() - t_start,
                "descriptor_s": t_desc,
                "solve_or_inner_s": t_fit,
                "median_solve_ms": solve_ms,
                "loss": loss,
                "best_loss": best,
                **point,
                **{f"used_{n}": v for n, v in used.items()},
            }
        )
        print(
            f"{strategy:6s} seed {seed} trial {k:3d}  t {rows[-1]['elapsed_s']:7.1f} s  desc {t_desc:5.1f} s  "
            f"solve/inner {t_fit:6.2f} s  loss {loss:.5f}  best {best:.5f}",
            flush=True,
        )
        k += 1
    return rows


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / "data" / "zuo2020" / "Si_train.xyz.gz"))
    ap.add_argument("--quick", action="store_true", help="60 training / 15 validation structures")
    ap.add_argument("--budget", type=float, default=600.0, help="seconds per strategy and seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--inner", type=int, default=60, help="inner solves per nested trial")
    ap.add_argument("--twojmax", type=int, default=6)
    ap.add_argument("--quadratic", action="store_true", help="qSNAP")
    ap.add_argument("--per-config-type", action="store_true", help="also search eweight[<ct>] of every config_type")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "snap_nested.csv"))
    args = ap.parse_args(argv)

    frames = D.read_structures(args.data)
    tr, va = D.random_split(frames, 0.2, 0, ["isolated_atom"])
    train, valid = [frames[i] for i in tr], [frames[i] for i in va]
    if args.quick:
        random.Random(0).shuffle(train)
        random.Random(1).shuffle(valid)
        train, valid = train[:60], valid[:15]
    cts = sorted({a.info[D.CT] for a in train})
    weights = dict(WEIGHT_SPACE)
    if args.per_config_type:
        for ct in cts:
            weights[f"eweight[{ct}]"] = {"type": "real", "low": 0.1, "high": 10.0, "prior": "log-uniform"}
    fixed = {"twojmax": args.twojmax, "quadratic": args.quadratic}
    print(
        f"train {len(train)} structures ({sum(len(a) for a in train)} atoms), valid {len(valid)}; "
        f"config_types {cts}; twojmax {args.twojmax}{' qSNAP' if args.quadratic else ''}; "
        f"weights {list(weights)}; budget {args.budget:.0f} s per strategy and seed"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="snap_nested_") as tmp:
        tmp = Path(tmp)
        D.write_structures(tmp / "train.xyz", train)
        D.write_structures(tmp / "valid.xyz", valid)
        for seed in args.seeds:
            for strategy in ("joint", "nested"):
                rows += run(
                    strategy, seed, args.budget, fixed, weights, args.inner, tmp / "train.xyz", tmp / "valid.xyz", tmp
                )
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    print(f"\nwrote {out}")
    summary = df.groupby(["strategy", "seed"]).agg(
        trials=("trial", "size"),
        best_loss=("best_loss", "last"),
        elapsed_s=("elapsed_s", "last"),
        descriptor_s=("descriptor_s", "median"),
        solve_or_inner_s=("solve_or_inner_s", "median"),
        median_solve_ms=("median_solve_ms", "median"),
    )
    print(summary.to_string(float_format=lambda v: f"{v:.4g}"))
    return df


if __name__ == "__main__":
    main()
