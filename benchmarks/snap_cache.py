"""Time per weight-only SNAP/qSNAP trial with and without the descriptor cache.

A weight-only trial changes the group weights / solver but not the descriptor
hyperparameters. Without the cache its fit computes the descriptors (FitSNAP + LAMMPS in a
subprocess) and solves; with the cache it loads the compressed descriptor blocks and solves.
Also reports the split of the descriptor computation (LAMMPS descriptors, QR compression,
subprocess wall) and the solve, and the LAMMPS validation time per trial (same either way).

    .venv/bin/python benchmarks/snap_cache.py            # Zuo Si, qSNAP twojmax 6, 5 trials
    .venv/bin/python benchmarks/snap_cache.py --quick    # 60 structures, 3 trials

Writes a CSV (one row per trial and mode) and prints a summary.
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
from potune.evaluate.predict import evaluate  # noqa: E402
from potune.fitters import snap  # noqa: E402


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / "data" / "zuo2020" / "Si_train.xyz.gz"))
    ap.add_argument("--quick", action="store_true", help="60 training structures, 3 trials")
    ap.add_argument("--trials", type=int, default=None, help="weight-only trials per mode (default 5, quick 3)")
    ap.add_argument("--twojmax", type=int, default=6)
    ap.add_argument("--linear", action="store_true", help="linear SNAP instead of qSNAP")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "snap_cache.csv"))
    args = ap.parse_args(argv)
    n_trials = args.trials or (3 if args.quick else 5)

    frames = D.read_structures(args.data)
    tr, va = D.random_split(frames, 0.2, 0, ["isolated_atom"])
    train, valid = [frames[i] for i in tr], [frames[i] for i in va]
    if args.quick:
        random.Random(0).shuffle(train)
        train, valid = train[:60], valid[:10]
    cts = sorted({a.info[D.CT] for a in train})
    n_atoms = sum(len(a) for a in train)
    print(
        f"training set: {len(train)} structures, {n_atoms} atoms; validation {len(valid)} structures; "
        f"config_types {cts}"
    )
    base = {"twojmax": args.twojmax, "quadratic": not args.linear, "rcutfac": 4.7, "rfac0": 0.99, "rmin0": 0.0}
    rng = np.random.default_rng(1)

    def weights() -> dict:
        w = {f"eweight[{c}]": float(np.exp(rng.uniform(np.log(100), np.log(15000)))) for c in cts}
        w.update({f"fweight[{c}]": float(np.exp(rng.uniform(np.log(0.1), np.log(500)))) for c in cts})
        return w

    rows = []
    with tempfile.TemporaryDirectory(prefix="potune-snap-bench-") as tmp:
        tmp = Path(tmp)
        train_file, valid_file = tmp / "train.xyz", tmp / "valid.xyz"
        D.write_structures(train_file, train)
        D.write_structures(valid_file, valid)
        species = D.species(train)
        spec = snap.descriptor_spec(base, {})
        t0 = time.perf_counter()
        meta = snap.compute_descriptors(spec, train_file, tmp / "cache", tmp / "cache.log")
        cache_wall = time.perf_counter() - t0
        if meta["status"] != "ok":
            raise SystemExit(f"descriptor computation failed: {meta['reason']}")
        print(
            f"descriptor cache: {meta['n_rows']} rows x {meta['n_columns']} columns -> {len(meta['blocks'])} blocks; "
            f"{cache_wall:.1f} s (LAMMPS descriptors {meta['descriptor_s']:.1f} s, QR {meta['compress_s']:.1f} s)"
        )
        rows.append(
            {
                "mode": "descriptor_job",
                "trial": -1,
                "wall_s": cache_wall,
                "descriptor_s": meta["descriptor_s"],
                "compress_s": meta["compress_s"],
                "solve_s": 0.0,
                "validate_s": np.nan,
                "cache_hit": False,
                "n_atoms": n_atoms,
                "n_rows": meta["n_rows"],
                "n_columns": meta["n_columns"],
                "loss": np.nan,
            }
        )
        for mode in ("cached", "uncached"):
            for k in range(n_trials):
                p = {**base, **weights()}
                d = tmp / f"{mode}{k}"
                t0 = time.perf_counter()
                res = snap.fit(
                    p,
                    {},
                    train_file,
                    d,
                    tmp / f"{mode}{k}.log",
                    species,
                    descriptors=tmp / "cache" if mode == "cached" else None,
                )
                wall = time.perf_counter() - t0
                if res.status != "ok":
                    raise SystemExit(f"{mode} trial {k} failed: {res.reason}")
                model = snap.read_model(d)
                t1 = time.perf_counter()
                metrics, _, _ = evaluate(snap.calculator(d), D.read_normalised(valid_file), "weighted", 0.75)
                val = time.perf_counter() - t1
                rows.append(
                    {
                        "mode": mode,
                        "trial": k,
                        "wall_s": wall,
                        "descriptor_s": model["descriptor_s"] if mode == "uncached" else 0.0,
                        "compress_s": np.nan,
                        "solve_s": model["solve_s"],
                        "validate_s": val,
                        "cache_hit": model["cache_hit"],
                        "n_atoms": n_atoms,
                        "n_rows": model["n_rows"],
                        "n_columns": len(model["coefficients"]),
                        "loss": metrics["loss"],
                    }
                )
                print(
                    f"{mode:8s} trial {k}: fit {wall:7.2f} s (solve {model['solve_s']:.2f} s), "
                    f"validate {val:.2f} s, loss {metrics['loss']:.4f}"
                )
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    c = df[df["mode"] == "cached"]["wall_s"].mean()
    u = df[df["mode"] == "uncached"]["wall_s"].mean()
    print(f"\nmean fit time per weight-only trial: with cache {c:.2f} s, without {u:.2f} s -> {u / c:.1f}x faster")
    print(
        f"(validation with LAMMPS, the same in both modes: {df[df['mode'] != 'descriptor_job']['validate_s'].mean():.2f} s "
        f"per trial)\nwrote {out}"
    )
    return df


if __name__ == "__main__":
    main()
