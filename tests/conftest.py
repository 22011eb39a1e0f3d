"""Shared fixtures: paths, the tiny real data set, and a runner for the workflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY_CONFIG = ROOT / "tests" / "configs" / "tiny.yaml"
TINY_TRAIN = ROOT / "tests" / "data" / "si_tiny_train.xyz"
TINY_TEST = ROOT / "tests" / "data" / "si_tiny_test.xyz"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def tiny_cfg() -> dict:
    """The tiny test configuration (a fresh copy)."""
    with open(TINY_CONFIG) as fh:
        return yaml.safe_load(fh)


def snakemake(
    args: list[str], cwd: Path = ROOT, timeout: float = 900, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile with the test environment's snakemake."""
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg"}
    if env:
        full_env.update(env)
    return subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_tiny(tmp_path: Path, cfg: dict, cores: int = 2, extra: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run a search described by ``cfg`` with its results under ``tmp_path``."""
    cfg = {**cfg, "results_dir": str(tmp_path / "results")}
    for key in ("train", "test", "validation"):
        if cfg["data"].get(key):
            cfg["data"][key] = str((ROOT / cfg["data"][key]).resolve())
    cfg_file = write_config(tmp_path / "config.yaml", cfg)
    return snakemake(["--cores", str(cores), "--configfile", str(cfg_file), *(extra or [])], cwd=ROOT)
