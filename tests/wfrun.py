"""Helpers of the end-to-end tests: run the real workflow (Snakemake in a subprocess) on a
copy of tests/configs/tiny.yaml with overrides."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tiny_config(tmp_path: Path, name: str = "tiny", **over) -> tuple[Path, Path]:
    """A tiny config in ``tmp_path`` (data paths absolute, results in ``tmp_path/results``);
    returns (config file, run directory)."""
    cfg = yaml.safe_load(TINY.read_text())
    for k in ("train", "test"):
        cfg["data"][k] = str(ROOT / cfg["data"][k])
    cfg["results_dir"] = str(tmp_path / "results")
    cfg["run_name"] = name
    whole = {k: over.pop(k) for k in ("space", "fixed") if k in over}  # replaced, not merged
    cfg = {**merge(cfg, over), **whole}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path, tmp_path / "results" / name


def snakemake(
    configfile: Path, *args: str, timeout: float = 600, check: bool = True, **kw
) -> subprocess.CompletedProcess:
    """Run Snakemake from the repository root (where `--profile slurm` and the workflow
    profile profiles/default are found)."""
    cmd = [*SNAKEMAKE, "--configfile", str(configfile), *args]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        ["timeout", "-k", "10", str(int(timeout)), *cmd], cwd=ROOT, capture_output=True, text=True, env=env, **kw
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def trials(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "trials.csv", keep_default_na=True)


def assert_same_trials(a: pd.DataFrame, b: pd.DataFrame, rtol: float = 1e-6) -> None:
    """Same trials, hyperparameters and status; losses equal to fit tolerance."""
    import numpy as np

    assert list(a["trial_id"]) == list(b["trial_id"])
    assert list(a["status"]) == list(b["status"])
    params = [
        c
        for c in a.columns
        if c
        not in ("params_file", "fit_logs", "fit_time_s", "fit_cpu_s", "peak_mem_mb", "predict_ms_per_atom", "reason")
        and not c.startswith(("loss", "energy_", "force_"))
    ]
    pd.testing.assert_frame_equal(a[params].reset_index(drop=True), b[params].reset_index(drop=True))
    np.testing.assert_allclose(a["loss"].to_numpy(float), b["loss"].to_numpy(float), rtol=rtol, equal_nan=True)
