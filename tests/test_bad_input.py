"""Bad input, tried for real: the corpus in tests/data/bad/ (see make_bad.py there) and broken
configurations. Each is a clear error naming the file, frame or key, raised before any job
runs, with existing results untouched.

Most cases call the parse-time checks directly (``potune.data.check.check_inputs``, the function
common.smk runs while Snakemake parses the workflow); a few go through ``snakemake`` in a
subprocess to prove the wiring. A search where every trial fails runs end to end (slow).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from potune.config import load_yaml_file, resolve_config
from potune.data.check import check_inputs
from potune.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
BAD = REPO / "tests" / "data" / "bad"
TRAIN = REPO / "tests" / "data" / "si_tiny_train.xyz"
TEST = REPO / "tests" / "data" / "si_tiny_test.xyz"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def tiny_config(tmp_path: Path, **data) -> dict:
    c = load_yaml_file(REPO / "tests" / "configs" / "tiny.yaml")
    c["results_dir"] = str(tmp_path / "results")
    c["data"]["train"] = str(TRAIN)
    c["data"]["test"] = str(TEST)
    c["data"].update({k: (str(v) if v is not None else None) for k, v in data.items()})
    return c


def data_error(raw: dict) -> str:
    with pytest.raises(DataError) as exc:
        check_inputs(resolve_config(raw))
    return str(exc.value)


# ----------------------------------------------------------------------------- the corpus, directly
CORPUS = [
    (
        "truncated.xyz",
        ["frame 3 (0-based, line 13)", "declares 2 atoms but the file ends after 1 atom line", "truncated"],
    ),
    ("wrong_atom_count.xyz", ["frame 2 (0-based, line 9)", "declares 3 atoms", "line 13", "is the atom count right?"]),
    ("non_numeric.xyz", ["frame 2 (0-based, line 9)", "not valid extended XYZ", "1.93O79552"]),
    ("no_energy.xyz", ["frame 2 (0-based)", "no energy under key 'energy'", "set data.energy_key"]),
    ("no_forces.xyz", ["frame 2 (0-based)", "no forces under key 'forces'", "set data.forces_key"]),
    ("nan_energy.xyz", ["frame 3 (0-based)", "energy 'energy' is nan"]),
    ("inf_forces.xyz", ["frame 1 (0-based)", "forces 'forces' contain NaN/inf (atom 0)"]),
    ("empty.xyz", ["contains no structures"]),
]


@pytest.mark.parametrize("name, expected", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_training_file(tmp_path, name, expected):
    msg = data_error(tiny_config(tmp_path, train=BAD / name))
    assert msg.startswith(str(BAD / name)), msg
    for part in expected:
        assert part in msg, msg


@pytest.mark.parametrize("key", ["test", "validation"])
@pytest.mark.parametrize("name", ["truncated.xyz", "nan_energy.xyz", "empty.xyz"])
def test_bad_test_or_validation_file(tmp_path, key, name):
    raw = tiny_config(tmp_path, **{key: BAD / name})
    if key == "validation":
        raw["split"] = {"method": "file"}
    assert data_error(raw).startswith(str(BAD / name))


@pytest.mark.parametrize("key", ["test", "validation"])
def test_species_absent_from_training(tmp_path, key):
    raw = tiny_config(tmp_path, **{key: BAD / "with_carbon.xyz"})
    if key == "validation":
        raw["split"] = {"method": "file"}
    msg = data_error(raw)
    assert msg == (
        f"{BAD / 'with_carbon.xyz'}: contains element(s) C (frame 1 (0-based)) absent from the training data "
        f"({TRAIN}): a potential cannot predict an element it was not trained on"
    )


def test_forces_optional_for_energy_only_fits(tmp_path):
    raw = tiny_config(tmp_path, train=BAD / "no_forces.xyz", test=None)
    raw["gap"]["energy_only"] = True
    raw["gap"]["e0_method"] = "auto"  # the file has no isolated atom for e0_method isolated
    assert check_inputs(resolve_config(raw)) == {"train": 6}


def test_wrong_energy_key_lists_the_keys_present(tmp_path):
    raw = tiny_config(tmp_path)
    raw["data"]["energy_key"] = "dft_energy"
    msg = data_error(raw)
    assert f"{TRAIN}: frame 0 (0-based): no energy under key 'dft_energy'" in msg
    assert "energy (calculator)" in msg  # what the file has instead


def test_per_atom_energies_warn(tmp_path):
    with pytest.warns(UserWarning, match="look like energies per atom"):
        check_inputs(resolve_config(tiny_config(tmp_path, train=BAD / "per_atom_energies.xyz", test=None)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the good data set does not warn
        check_inputs(resolve_config(tiny_config(tmp_path)))


def test_missing_and_directory_data_paths(tmp_path):
    with pytest.raises(ConfigError, match=r"^data\.train: file not found: .*nope\.xyz$"):
        resolve_config(tiny_config(tmp_path, train=tmp_path / "nope.xyz"))
    with pytest.raises(ConfigError, match=r"^data\.test: file not found"):
        resolve_config(tiny_config(tmp_path, test=tmp_path))  # a directory is not a file


def test_corpus_is_what_make_bad_writes(tmp_path):
    """The committed corpus matches its generator (so the documented breakage is the real one)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_bad", BAD / "make_bad.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    before = {p.name: p.read_bytes() for p in BAD.glob("*.xyz")}
    mod.HERE = tmp_path
    mod.main()
    after = {p.name: p.read_bytes() for p in tmp_path.glob("*.xyz")}
    assert before == after


# ----------------------------------------------------------------------------- through Snakemake
def digest(root: Path) -> dict[str, tuple[str, int]]:
    """Content hash and mtime of every file under ``root``."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_snakemake(tmp_path: Path, raw: dict, dry: bool = True, extra: tuple = ()) -> subprocess.CompletedProcess:
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    cmd = [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--cores",
        "1",
        "--configfile",
        str(cfg_file),
        *extra,
    ]
    if dry:
        cmd.insert(1, "-n")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "MPLBACKEND": "Agg"})


@pytest.fixture
def earlier_results(tmp_path) -> Path:
    """A run folder with results of an earlier run in it."""
    run = tmp_path / "results" / "tiny"
    (run / "iter0").mkdir(parents=True)
    (run / "trials.csv").write_text("iteration,trial,trial_id,status,loss\n0,t00,0-00,ok,0.5\n")
    (run / "iter0" / "table.csv").write_text("iteration,trial,trial_id,status,loss\n0,t00,0-00,ok,0.5\n")
    return run


SNAKEMAKE_CASES = [
    (
        "truncated-train",
        lambda c: c["data"].update(train=str(BAD / "truncated.xyz")),
        [str(BAD / "truncated.xyz"), "frame 3 (0-based, line 13)"],
    ),
    (
        "carbon-in-test",
        lambda c: c["data"].update(test=str(BAD / "with_carbon.xyz")),
        [str(BAD / "with_carbon.xyz"), "element(s) C (frame 1 (0-based)) absent from the training data"],
    ),
    (
        "unknown-key",
        lambda c: c["optimizer"].update(batchsize=4),
        ["unknown config key 'optimizer.batchsize'; did you mean 'optimizer.batch_size'?"],
    ),
]


@pytest.mark.parametrize("mutate, expected", [c[1:] for c in SNAKEMAKE_CASES], ids=[c[0] for c in SNAKEMAKE_CASES])
def test_snakemake_stops_at_parse_time(tmp_path, earlier_results, mutate, expected):
    raw = tiny_config(tmp_path)
    mutate(raw)
    before = digest(earlier_results)
    proc = run_snakemake(tmp_path, raw)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "potune: " in out
    for part in expected:
        assert part in out, out[-2000:]
    assert "Traceback" not in out
    assert "Job stats" not in out and "rule split" not in out  # no DAG was built, no job listed
    assert digest(earlier_results) == before


def test_unwritable_results_dir_through_snakemake(tmp_path):
    raw = tiny_config(tmp_path)
    (tmp_path / "blocker").write_text("a file where the results folder should go\n")
    raw["results_dir"] = str(tmp_path / "blocker" / "results")
    proc = run_snakemake(tmp_path, raw)
    assert proc.returncode != 0
    assert (
        f"potune: results_dir: cannot write results to {tmp_path / 'blocker' / 'results' / 'tiny'}"
        in proc.stdout + proc.stderr
    )


def test_bad_data_stops_a_real_run_before_any_job(tmp_path, earlier_results):
    """Not a dry run: Snakemake is asked to run, and nothing runs."""
    raw = tiny_config(tmp_path, train=BAD / "no_forces.xyz")
    before = digest(earlier_results)
    proc = run_snakemake(tmp_path, raw, dry=False)
    assert proc.returncode != 0
    assert (
        f"potune: {BAD / 'no_forces.xyz'}: frame 2 (0-based): no forces under key 'forces'" in proc.stdout + proc.stderr
    )
    assert digest(earlier_results) == before  # no new file, nothing rewritten
    logs = list((tmp_path / ".snakemake" / "log").glob("*.log")) if (tmp_path / ".snakemake" / "log").exists() else []
    for log in logs:  # Snakemake opens its log before parsing; no job may appear in it
        text = log.read_text()
        assert "rule " not in text and "Finished job" not in text, text


def test_per_atom_energies_warn_through_snakemake(tmp_path):
    raw = tiny_config(tmp_path, train=BAD / "per_atom_energies.xyz", test=None)
    proc = run_snakemake(tmp_path, raw)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        f"potune: WARNING: {BAD / 'per_atom_energies.xyz'}: energies do not grow with the number of atoms"
        in proc.stdout + proc.stderr
    )


# ----------------------------------------------------------------------------- every trial fails
@pytest.mark.slow
def test_search_where_every_trial_fails_ends_with_a_summary(tmp_path):
    """Every fit fails (the memory limit is too small for gap_fit to even load): the run still
    ends - exit 0, the trial table with every failure and its reason, best.yaml with
    ``status: none``, a summary that says so, and no refit, potential or test errors."""
    raw = tiny_config(tmp_path)
    raw["resources"]["fit"]["mem_mb"] = 20
    raw["stop"]["max_iterations"] = 2
    proc = run_snakemake(tmp_path, raw, dry=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "RuntimeError" not in out
    assert "NO TRIAL SUCCEEDED" in out
    run = tmp_path / "results" / "tiny"
    import pandas as pd

    table = pd.read_csv(run / "trials.csv")
    assert len(table) == 4 and (table["status"] == "failed").all()
    assert table["reason"].str.contains("gap_fit").all()
    for logs in table["fit_logs"]:
        for log in logs.split(";"):
            assert Path(log).is_file()
    best = yaml.safe_load((run / "best" / "best.yaml").read_text())
    assert best["status"] == "none" and best["n_trials"] == 4
    assert best["failures"][0]["count"] == 4 and Path(best["failures"][0]["example_log"]).is_file()
    summary = (run / "summary.md").read_text()
    assert "No trial succeeded: all 4 trial(s) failed. No potential was fitted." in summary
    assert "## Why the trials failed" in summary and best["failures"][0]["example_log"] in summary
    assert (run / "convergence.png").is_file() and (run / "run" / "versions.yaml").is_file()
    assert not (run / "best" / "potential").exists() and not (run / "best" / "test_errors.csv").exists()
