"""Results integrity: the trial table is written atomically, every row leads to its files,
and a run records its configuration and exact package versions beside its results."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
import yaml

from potune.config import load_yaml_file, resolve_config
from potune.io import atomic_write_text
from potune.steps.report import record_run
from potune.trials import read_table, write_table

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def small_table(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "iteration": [0] * n,
            "trial": [f"t{i:02d}" for i in range(n)],
            "trial_id": [f"0-{i:02d}" for i in range(n)],
            "status": ["ok"] * n,
            "reason": [""] * n,
            "loss": [0.1 * (i + 1) for i in range(n)],
        }
    )


# ----------------------------------------------------------------------------- atomic writes
def test_write_table_goes_through_a_temporary_file_and_a_rename(tmp_path, monkeypatch):
    calls = []
    real_replace = os.replace

    def spy(src, dst):
        calls.append((Path(src), Path(dst)))
        assert Path(src).is_file() and Path(src).stat().st_size > 0  # complete before the rename
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    out = tmp_path / "trials.csv"
    write_table(out, small_table())
    assert len(calls) == 1
    src, dst = calls[0]
    assert dst == out and src.parent == out.parent and src.name.startswith(".trials.csv.")
    pd.testing.assert_frame_equal(read_table(out), small_table())


@pytest.mark.parametrize("fail_in", ["fsync", "replace"])
def test_interrupted_write_keeps_the_old_table(tmp_path, monkeypatch, fail_in):
    out = tmp_path / "trials.csv"
    write_table(out, small_table(2))
    before = out.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, fail_in, boom)
    with pytest.raises(OSError, match="No space left"):
        write_table(out, small_table(5))
    assert out.read_bytes() == before  # the old table, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.csv"]  # no temporary file left


def test_atomic_write_creates_folders_and_replaces(tmp_path):
    p = tmp_path / "a" / "b" / "x.txt"
    atomic_write_text(p, "one\n")
    atomic_write_text(p, "two\n")
    assert p.read_text() == "two\n" and sorted(os.listdir(p.parent)) == ["x.txt"]


def test_record_run_writes_config_and_versions(tmp_path):
    raw = load_yaml_file(REPO / "tests" / "configs" / "tiny.yaml")
    raw["results_dir"] = str(tmp_path)
    cfg = resolve_config(raw, check_files=False)
    record_run(cfg, tmp_path / "run" / "config.yaml", tmp_path / "run" / "versions.yaml")
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()) == cfg
    v = yaml.safe_load((tmp_path / "run" / "versions.yaml").read_text())
    assert v["python"] == sys.version.split()[0]
    for pkg in ("snakemake", "numpy", "scikit-optimize", "ase", "quippy-ase", "potune"):
        assert v["packages"][pkg] == metadata.version(pkg)


# ----------------------------------------------------------------------------- a real run
def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".snakemake" not in p.parts
    }


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny search (2 iterations x 2 trials of real gap_fit), run once for this module."""
    tmp = tmp_path_factory.mktemp("integrity")
    raw = load_yaml_file(REPO / "tests" / "configs" / "tiny.yaml")
    raw["results_dir"] = str(tmp / "results")
    for k in ("train", "test"):
        raw["data"][k] = str(REPO / raw["data"][k])
    cfg_file = tmp / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    cmd = [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp),
        "--cores",
        "2",
        "--configfile",
        str(cfg_file),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return {"raw": raw, "run": tmp / "results" / raw["run_name"], "cmd": cmd, "dir": tmp}


@pytest.mark.slow
def test_every_row_traces_to_its_files(tiny_run):
    run = tiny_run["run"]
    table = read_table(run / "trials.csv")
    assert len(table) == 4
    space = list(tiny_run["raw"]["space"])
    for row in table.to_dict("records"):
        params = Path(row["params_file"])
        assert params.is_file() and params.parent == run / f"iter{row['iteration']}" / "proposals"
        prop = yaml.safe_load(params.read_text())
        assert prop["trial_id"] == row["trial_id"] and prop["trial"] == row["trial"]
        for name in space:  # the row's hyperparameters are the ones the fit was given
            assert prop["point"][name] == pytest.approx(row[name])
        for k, v in prop["fixed"].items():
            assert str(row[k]) == str(v)
        logs = row["fit_logs"].split(";")
        assert len(logs) == row["n_folds"] == 1
        for log in logs:
            log = Path(log)
            assert log.is_file() and log.read_text().startswith("# ") and "gap_fit" in log.read_text().splitlines()[0]
            assert (log.parent / "fit.json").is_file() and (log.parent / "valid.json").is_file()
            assert str(prop["seed"]) in log.read_text().splitlines()[0]  # rnd_seed of this trial


@pytest.mark.slow
def test_final_table_is_the_last_iterations_table(tiny_run):
    run = tiny_run["run"]
    assert (run / "trials.csv").read_bytes() == (run / "iter1" / "table.csv").read_bytes()
    assert read_table(run / "iter0" / "table.csv").equals(read_table(run / "trials.csv").iloc[:2])


@pytest.mark.slow
def test_run_records_config_and_versions(tiny_run):
    run = tiny_run["run"]
    recorded = yaml.safe_load((run / "run" / "config.yaml").read_text())
    assert recorded == resolve_config(tiny_run["raw"], check_files=False)
    versions = yaml.safe_load((run / "run" / "versions.yaml").read_text())
    for pkg, v in versions["packages"].items():
        try:
            assert v == metadata.version(pkg), pkg
        except metadata.PackageNotFoundError:
            assert v is None
    assert versions["python"] == sys.version.split()[0]


@pytest.mark.slow
def test_rerun_of_a_finished_run_changes_nothing(tiny_run):
    before = digest(tiny_run["run"])
    proc = subprocess.run(
        tiny_run["cmd"], capture_output=True, text=True, timeout=600, env={**os.environ, "MPLBACKEND": "Agg"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert digest(tiny_run["run"]) == before
