"""Shared fixtures: paths, the tiny real data set, and a runner for the workflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


@pytest.fixture(scope="session")
def binary_train(tmp_path_factory) -> Path:
    """Cu-Au structures labelled with ase's EMT (cubic and sheared cells; 16 atoms, Au fraction
    varying from structure to structure), normalised."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from potune import data as D

    rng = np.random.default_rng(3)
    frames = []
    for i in range(10):
        a = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 1))
        sym = np.array(a.get_chemical_symbols())
        sym[rng.random(len(a)) < 0.4] = "Au"
        a.set_chemical_symbols(list(sym))
        if i % 3 == 2:
            cell = np.array(a.cell)
            cell[1] += 0.3 * cell[0] / np.linalg.norm(cell[0])
            a.set_cell(cell, scale_atoms=True)
        a.set_cell(np.array(a.cell) * (1 + 0.02 * rng.standard_normal()), scale_atoms=True)
        a.positions += 0.08 * rng.standard_normal(a.positions.shape)
        a.calc = EMT()
        a.info["energy"] = a.get_potential_energy()
        a.arrays["forces"] = a.get_forces()
        a.info["config_type"] = "sheared" if i % 3 == 2 else "cubic"
        a.calc = None
        frames.append(a)
    raw = tmp_path_factory.mktemp("cuau") / "raw.xyz"
    import ase.io

    ase.io.write(raw, frames, format="extxyz")
    path = raw.with_name("train.xyz")
    D.write_structures(path, D.read_structures(raw))
    return path


#: the modules that take minutes (end-to-end searches, slowest first): collected first, so that
#: with `make test` (pytest-xdist, one module per worker, in collection order) they start at
#: once on the workers instead of one of them running alone at the end
SLOW_MODULES_FIRST = ("test_paper.py", "test_resume_cluster.py", "test_workflow.py", "test_outcomes_e2e.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module's order kept
