"""Calibrate potune's GAP memory model against real gap_fit runs.

For a few hyperparameter sets and training-set sizes, runs gap_fit (through
potune.cluster.runner.run_limited, which samples the resident memory of the process group) and
prints the measured peak RSS beside gap_fit's own printed estimate ("PEAK") and potune's
(potune.fitters.gap.peak_mem_mb), then writes a CSV.

    python benchmarks/gap_memory.py [--quick] [--data FILE] [--out CSV]

--quick: three small fits on the Si-GAP-18 test subset (~1 min); otherwise Zuo 2020 Si
(13k atoms, several minutes).
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import tempfile
from pathlib import Path

from potune import data as D
from potune.cluster.runner import run_limited
from potune.data.stats import dataset_stats
from potune.fitters.gap import arrays_mb as gap_arrays_mb
from potune.fitters.gap import build_command, resolve_params
from potune.fitters.gap import peak_mem_mb as gap_peak_mb

ROOT = Path(__file__).resolve().parents[1]

FULL = [  # (every k-th structure, n_sparse, n_max, l_max, forces)
    (2, 200, 4, 4, False),
    (2, 200, 4, 4, True),
    (2, 1000, 4, 4, True),
    (2, 200, 6, 6, True),
    (1, 200, 4, 4, True),
    (1, 500, 8, 8, False),
]
QUICK = [(1, 15, 3, 3, True), (1, 100, 6, 6, True), (1, 100, 8, 8, False)]


def gap_fit_estimate(log: Path) -> float | None:
    """gap_fit's printed 'PEAK <n> <unit>' (MB)."""
    m = re.search(r"^PEAK\s+([\d.]+)\s+(\w+)", log.read_text(errors="replace"), re.M)
    if not m:
        return None
    scale = {"B": 1 / 1024**2, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}[m.group(2)]
    return float(m.group(1)) * scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default="benchmarks/gap_memory.csv")
    args = ap.parse_args()
    src = args.data or (ROOT / ("tests/data/si_tiny_train.xyz" if args.quick else "data/zuo2020/Si_train.xyz.gz"))
    frames = D.read_structures(
        src, require_forces=True, energy_key="energy", forces_key="forces", config_type_key="config_type"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for every, ns, nmax, lmax, forces in QUICK if args.quick else FULL:
            train = tmp / f"train_{every}.xyz"
            D.write_structures(train, frames[::every])
            settings = {"descriptor": "soap", "energy_only": not forces, "e0_method": "average"}
            hp = {"n_sparse": ns, "n_max": nmax, "l_max": lmax, "cutoff": 5.0, "zeta": 4}
            stats = dataset_stats(train)
            work = tmp / "work"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            shutil.copy(train, work / "train.xyz")
            cmd = build_command(hp, settings, work / "train.xyz", work / "gap.xml", [14], seed=1)
            res = run_limited(cmd, work / "log", cwd=work)
            if res.status != "ok":
                raise SystemExit(f"gap_fit failed: {res.reason}")
            row = {
                "n_atoms": stats.n_atoms,
                "n_configs": stats.n_configs,
                "n_sparse": ns,
                "n_max": nmax,
                "l_max": lmax,
                "forces": forces,
                "wall_s": round(res.wall_s, 1),
                "measured_peak_rss_mb": round(res.peak_rss_mb, 1),
                "gap_fit_estimate_mb": gap_fit_estimate(work / "log"),
                "potune_arrays_mb": round(gap_arrays_mb(resolve_params(hp), settings, stats)["peak"], 1),
                "potune_peak_mb": round(gap_peak_mb(hp, settings, stats), 1),
            }
            row["measured_over_potune"] = round(row["measured_peak_rss_mb"] / row["potune_peak_mb"], 2)
            rows.append(row)
            print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
