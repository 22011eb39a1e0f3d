"""qSNAP hyperparameter search on the Zuo et al. 2020 data (XPOT Table II) with potune.

For each element, runs the Snakemake workflow with fitter snap (qSNAP, twojmax 6; search
space as XPOT: rcutfac 3-6, rfac0 0.5-1.5, rmin0 fixed 0, per-config_type energy weights
100-15000 and force weights 0.1-500, log-uniform; loss alpha 0.75; Hammersley initial design;
validation held out from the training data: ``potune.paper.qsnap_zuo_config``'s held-out
protocol. Runs measured before #16 item 3 searched rmin0 in 0-0.2 from a Sobol design, so
such a run folder is refused as a different search) on the published
train/test split from ../shared/data/zuo2020, then tabulates the test-set errors of the
refitted best potential beside the published qSNAP and the XPOT-optimised qSNAP errors
(``potune.paper.ZUO_PUBLISHED``, as in ../shared/data/README.md).

    .venv/bin/python benchmarks/zuo_qsnap.py                 # Si Li Cu Ni, 38 x 4 = 152 evaluations each
    .venv/bin/python benchmarks/zuo_qsnap.py --quick         # Si only, 2 x 2 = 4 evaluations
    .venv/bin/python benchmarks/zuo_qsnap.py --elements Si --iterations 10 --batch 4

Writes benchmarks/results/zuo_qsnap.csv (and .md); the runs go to
benchmarks/results/zuo_qsnap/qsnap-<El>-<iterations>x<batch>/ (an existing run is continued).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))
SHARED = REPO.parent / "shared" / "data"


def published() -> dict:
    """element -> {qsnap_e, qsnap_f, xpot_e, xpot_f}: the published qSNAP (Zuo et al. 2020) and
    XPOT-optimised qSNAP test errors, from :data:`potune.paper.ZUO_PUBLISHED`."""
    from potune.report.paper import ZUO_PUBLISHED

    return {
        el: {"published_qsnap_e_mev": v[2], "published_qsnap_f": v[3], "xpot_qsnap_e_mev": v[4], "xpot_qsnap_f": v[5]}
        for el, v in ZUO_PUBLISHED.items()
    }


def make_config(element: str, iterations: int, batch: int, results: Path) -> dict:
    """The XPOT Table II qSNAP search (:func:`potune.report.paper.qsnap_zuo_config`) on shared data."""
    from potune.report.paper import qsnap_zuo_config

    z = SHARED / "zuo2020"
    cfg = qsnap_zuo_config(
        z / f"{element}_train.xyz.gz",
        z / f"{element}_test.xyz.gz",
        f"qsnap-{element}-{iterations}x{batch}",
        iterations,
        batch,
    )
    return {**cfg, "results_dir": str(results)}


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Si only, 2 iterations x 2 trials")
    ap.add_argument("--elements", nargs="+", default=None)
    ap.add_argument("--iterations", type=int, default=None, help="default 38 (quick 2)")
    ap.add_argument("--batch", type=int, default=None, help="default 4 (quick 2)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "zuo_qsnap.csv"))
    args = ap.parse_args(argv)
    elements = args.elements or (["Si"] if args.quick else ["Si", "Li", "Cu", "Ni"])
    iterations = args.iterations or (2 if args.quick else 38)
    batch = args.batch or (2 if args.quick else 4)
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED}: shared data not found (this benchmark needs ../shared/data)")
    ref = published()
    results = REPO / "benchmarks" / "results" / "zuo_qsnap"
    rows = []
    for el in elements:
        cfg = make_config(el, iterations, batch, results)
        name = cfg["run_name"]
        cfg_file = results / f"{name}.yaml"
        cfg_file.parent.mkdir(parents=True, exist_ok=True)
        cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", str(args.cores), "--configfile", str(cfg_file)],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        log = results / f"{name}.snakemake.log"
        log.write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            print(f"{el}: the search failed (see {log})")
            rows.append({"element": el, "status": "failed", "wall_s": wall, **ref.get(el, {})})
            continue
        run = results / name
        m = json.loads((run / "best" / "test_metrics.json").read_text())
        table = pd.read_csv(run / "trials.csv")
        rows.append(
            {
                "element": el,
                "status": "ok",
                "evaluations": len(table),
                "failed_trials": int((table["status"] != "ok").sum()),
                "test_e_rmse_mev": m["energy_rmse_mev"],
                "test_f_rmse": m["force_rmse"],
                **ref.get(el, {}),
                "wall_s": wall,
                "fit_time_s": float(table["fit_time_s"].sum()),
            }
        )
        print(
            f"{el}: E {m['energy_rmse_mev']:.2f} meV/atom, F {m['force_rmse']:.3f} eV/A after {len(table)} evaluations "
            f"({wall / 60:.1f} min); published qSNAP {ref.get(el, {}).get('published_qsnap_e_mev')} / "
            f"{ref.get(el, {}).get('published_qsnap_f')}, XPOT {ref.get(el, {}).get('xpot_qsnap_e_mev')} / "
            f"{ref.get(el, {}).get('xpot_qsnap_f')}"
        )
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    out.with_suffix(".md").write_text(df.to_markdown(index=False, floatfmt=".3g") + "\n")
    print(f"wrote {out}")
    return df


if __name__ == "__main__":
    main()
