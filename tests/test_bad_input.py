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


# ----------------------------------------------------------------------------- #19: variants of good data
def frames_of(path: Path = TRAIN) -> list[list[str]]:
    """The frames of an XYZ file as lists of lines (count line, comment, atom lines)."""
    lines, out, i = path.read_text().splitlines(), [], 0
    while i < len(lines) and lines[i].strip():
        n = int(lines[i])
        out.append(lines[i : i + 2 + n])
        i += 2 + n
    return out


def variant(tmp_path: Path, name: str, edit, frame: int = 2) -> Path:
    """tests/data/si_tiny_train.xyz with ``edit(lines)`` applied to one frame (0-based)."""
    frames = frames_of()
    frames[frame] = edit(list(frames[frame]))
    path = tmp_path / name
    path.write_text("".join(line + "\n" for f in frames for line in f))
    return path


def sub_comment(old: str, new: str):
    def edit(lines):
        assert old in lines[1], lines[1]
        lines[1] = lines[1].replace(old, new)
        return lines

    return edit


def sub_atom(k: int, old: str, new: str):
    def edit(lines):
        assert old in lines[2 + k], lines[2 + k]
        lines[2 + k] = lines[2 + k].replace(old, new, 1)
        return lines

    return edit


# frame 2 of si_tiny_train.xyz: count line 8, comment line 9, atoms on lines 10-11
BAD_VALUES = [
    # class 2: wrong values, no message (ase reads T as True, i.e. 1.0 eV; keeps the last of two keys)
    (
        "energy_T",
        sub_comment("energy=-326.12843", "energy=T"),
        ["comment line 9", "energy 'energy' = True is a boolean (T/F)"],
    ),
    ("energy_F", sub_comment("energy=-326.12843", "energy=F"), ["comment line 9", "= False is a boolean"]),
    (
        "energy_word",
        sub_comment("energy=-326.12843", "energy=abc"),
        ["comment line 9", "energy 'energy' = 'abc'", "not a number"],
    ),
    (
        "forces_logical",
        lambda ls: (
            [ls[0], ls[1].replace("forces:R:3", "forces:L:3")]
            + [" ".join(a.split()[:4] + ["T", "F", "T"]) for a in ls[2:]]
        ),
        ["comment line 9", "forces 'forces' are booleans (T/F), not numbers"],
    ),
    (
        "energy_twice",
        sub_comment("energy=-326.12843", "energy=-1 energy=-2"),
        ["comment line 9", "key 'energy' is given 2 times in the comment line ('-1' and '-2')"],
    ),
    ("config_type_twice", sub_comment("config_type=dia", "config_type=dia config_type=bt"), ["key 'config_type'"]),
    ("pbc_twice", sub_comment('pbc="T T T"', 'pbc="T T T" pbc="F F F"'), ["key 'pbc' is given 2 times"]),
    # class 5: found only after the whole search (the dimer figure) before #19
    (
        "nan_lattice",
        sub_comment('Lattice="4.053009', 'Lattice="nan'),
        ["comment line 9", "the cell (Lattice) contains NaN/inf"],
    ),
    ("inf_lattice", sub_comment("3.032233", "inf"), ["comment line 9", "the cell (Lattice) contains NaN/inf"]),
    ("nan_position", sub_atom(1, "1.93079559", "nan"), ["comment line 9", "positions contain NaN/inf (atom 1)"]),
    (
        "flat_periodic_cell",
        sub_comment('Lattice="4.053009 0.0 0.0', 'Lattice="0.0 0.0 0.0'),
        ["periodic (pbc TTT) but its cell (Lattice) has no extent"],
    ),
    # class 6: overlapping atoms (a fit on them fails with a misleading reason)
    ("overlap", sub_atom(1, "1.93079559       1.11474490       0.78824413", "0.01 0.02 0.03"), ["atoms 0 and 1"]),
    (
        "overlap_with_image",  # atom 1 a periodic image 0.05 Å away from atom 0: seen only with images
        sub_atom(1, "1.93079559       1.11474490       0.78824413", "4.053009 0.0 0.05"),
        ["comment line 9", "atoms 0 and 1 are 0.05 Å apart (closer than 0.1 Å"],
    ),
]


@pytest.mark.parametrize("name, edit, expected", BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_bad_values_are_refused_naming_file_frame_line_key(tmp_path, name, edit, expected):
    path = variant(tmp_path, f"{name}.xyz", edit)
    msg = data_error(tiny_config(tmp_path, train=path))
    assert msg.startswith(f"{path}: frame 2 (0-based"), msg
    for part in expected:
        assert part in msg, msg


def test_non_numeric_energy_under_another_key(tmp_path):
    frames = frames_of()
    for i, f in enumerate(frames):  # data.energy_key: dft_energy, a boolean in frame 2 only
        f[1] = f[1].replace("energy=", "dft_energy=T energy=" if i == 2 else "dft_energy=-1.5 energy=")
    path = tmp_path / "dft.xyz"
    path.write_text("".join(line + "\n" for f in frames for line in f))
    raw = tiny_config(tmp_path, train=path, test=None)
    raw["data"]["energy_key"] = "dft_energy"
    msg = data_error(raw)
    assert (
        msg == f"{path}: frame 2 (0-based, comment line 9): energy 'dft_energy' = True is a boolean (T/F), not a number"
    )


def test_close_but_real_atoms_pass(tmp_path):
    """A short bond (H2, 0.74 Å) and the shipped data sets are not 'overlapping atoms'."""
    from potune.data.read import closest_pair, read_structures

    assert closest_pair(__import__("ase").Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])) is None
    assert len(read_structures(REPO / "data" / "misc" / "C_dimers_gap17.xyz.gz")) > 0
    assert len(read_structures(TRAIN)) == 42


# ----------------------------------------------------------------------------- #19: configuration files
def config_error(raw: dict, **kw) -> str:
    with pytest.raises(ConfigError) as exc:
        resolve_config(raw, **kw)
    return str(exc.value)


DUPLICATE_YAML = [
    (  # the example: a second optimizer section dropped seed and batch size
        "optimizer:\n  seed: 3\n  batch_size: 2\nstop:\n  max_iterations: 2\noptimizer:\n  kind: bayes\n",
        "line 6: key 'optimizer' given twice in one mapping (first on line 1)",
    ),
    (
        "space:\n  cutoff: {type: real, low: 3, high: 5}\n  cutoff: {type: real, low: 4, high: 6}\n",
        "line 3: key 'cutoff'",
    ),
    ("fixed: {l_max: 3, zeta: 2, l_max: 4}\n", "line 1: key 'l_max' given twice"),
    (
        "run_name: a\nresults_dir: r\nrun_name: b\n",
        "line 3: key 'run_name' given twice in one mapping (first on line 1)",
    ),
]


@pytest.mark.parametrize("text, expected", DUPLICATE_YAML, ids=["section", "space-dim", "flow-mapping", "top-level"])
def test_duplicate_yaml_keys_are_refused(tmp_path, text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_yaml_file(path)
    assert str(exc.value).startswith(f"{path}: {expected}"), exc.value


def test_yaml_merge_keys_still_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: &b {low: 1, high: 2}\nspace:\n  x:\n    <<: *b\n    high: 3\n")
    assert load_yaml_file(path)["space"]["x"] == {"low": 1, "high": 3}


def billion_laughs(levels: int) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 9, 20])
def test_yaml_alias_bomb_is_refused_at_once(tmp_path, levels):
    import time

    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs(levels))
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"aliases \(\*name\) expand to more than 100000 values"):
        load_yaml_file(path)
    assert time.monotonic() - t0 < 2


def test_reasonable_aliases_pass(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: &a [1, 2, 3]\nb: [*a, *a, *a]\n")
    assert load_yaml_file(path)["b"] == [[1, 2, 3]] * 3


def test_huge_config_file_is_refused_unread(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("# padding\n" * 500_000)  # 5 MB
    with pytest.raises(ConfigError, match=r"huge\.yaml: 4\.8 MB; a configuration file may be at most 4 MB"):
        load_yaml_file(path)


# ----------------------------------------------------------------------------- #19: values recorded but not used
INTEGER_CASES = [
    (lambda c: c["fixed"].update(l_max=3.7), "fixed.l_max: must be an integer, got 3.7"),
    (lambda c: c["fixed"].update(n_sparse=15.5), "fixed.n_sparse: must be an integer, got 15.5"),
    (
        lambda c: c["space"].update(n_max={"type": "real", "low": 2, "high": 4}),
        "space.n_max: an integer hyperparameter; search it as {type: integer, low: 2, high: 4}, not type real",
    ),
    (
        lambda c: c["space"].update(n_max={"type": "categorical", "values": [2, 3.5]}),
        "space.n_max.values: must be integers, got 3.5",
    ),
    (
        lambda c: c["space"].update(n_max={"type": "integer", "low": 2, "high": 4.5}),
        "space.n_max.high: must be an integer for an integer parameter, got 4.5",
    ),
]


@pytest.mark.parametrize(
    "mutate, expected", INTEGER_CASES, ids=["fixed", "fixed-n_sparse", "real", "categorical", "bound"]
)
def test_integer_hyperparameters_must_be_integers(tmp_path, mutate, expected):
    raw = tiny_config(tmp_path)
    mutate(raw)
    assert config_error(raw, check_files=False) == expected


def test_integral_floats_and_real_zeta_pass(tmp_path):
    raw = tiny_config(tmp_path)
    raw["fixed"].update(l_max=3.0, zeta=2.5)  # gap_fit's zeta is real
    assert resolve_config(raw, check_files=False)["fixed"]["zeta"] == 2.5


def test_integer_stage1_hyperparameter_searched_as_real(tmp_path):
    raw = tiny_config(tmp_path)
    raw["strategy"] = "two_stage"
    raw["fixed"].pop("l_max")
    raw["stage1"] = {"space": {"l_max": {"type": "real", "low": 2, "high": 4}}}
    assert config_error(raw, check_files=False).startswith("stage1.space.l_max: an integer hyperparameter")


# ----------------------------------------------------------------------------- #19: results outside results_dir
@pytest.mark.parametrize("name", ["..", ".", "a/b", "/tmp/abs", "../up", ".hidden", "-rf", "", "a b", "x" * 129])
def test_unsafe_run_names_are_refused(tmp_path, name):
    raw = tiny_config(tmp_path)
    raw["run_name"] = name
    assert config_error(raw, check_files=False).startswith(f"run_name: {name!r} is not a safe run name")


@pytest.mark.parametrize("name", ["tiny", "si-gap_2.v1", "_x", "A0"])
def test_safe_run_names_pass(tmp_path, name):
    raw = tiny_config(tmp_path)
    raw["run_name"] = name
    assert resolve_config(raw, check_files=False)["run_name"] == name


# ----------------------------------------------------------------------------- #19: unbounded inputs
BOUNDS = [
    ("optimizer", "batch_size", 1_000_000_000, 1000),
    ("optimizer", "n_initial", 10**7, 10000),
    ("optimizer", "grid_points", 10**6, 1000),
    ("stop", "max_iterations", 10**9, 10000),
    ("stop", "patience", 10**9, 10000),
    ("split", "k", 1000, 100),
    ("kernel", "n_sample", 10**9, 1000000),
]


@pytest.mark.parametrize("section, key, value, maximum", BOUNDS, ids=[f"{b[0]}.{b[1]}" for b in BOUNDS])
def test_huge_counts_are_refused(tmp_path, section, key, value, maximum):
    raw = tiny_config(tmp_path)
    raw.setdefault(section, {})[key] = value
    if key == "k":
        raw["split"]["method"] = "kfold"
    msg = config_error(raw, check_files=False)
    assert msg == f"config key '{section}.{key}': {value} is greater than the maximum of {maximum}", msg


def test_stage1_optimizer_is_bounded_too(tmp_path):
    raw = tiny_config(tmp_path)
    raw["stage1"] = {"optimizer": {"batch_size": 10**6}}
    assert "is greater than the maximum of 1000" in config_error(raw, check_files=False)


# ----------------------------------------------------------------------------- #19: misleading reasons
@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: (c["space"].pop("cutoff"), c["fixed"].update(cutoff=0.01)), "fixed.cutoff: 0.01 Å"),
        (lambda c: c["space"].update(cutoff={"type": "real", "low": 0.5, "high": 5.0}), "space.cutoff.low: 0.5 Å"),
        (
            lambda c: c["space"].update(cutoff={"type": "categorical", "values": [4.0, 0.2]}),
            "space.cutoff.values: 0.2 Å",
        ),
        (
            lambda c: (c["gap"].update(two_body=True), c["fixed"].update(two_body_cutoff=0.05)),
            "fixed.two_body_cutoff: 0.05 Å",
        ),
    ],
    ids=["fixed", "space-low", "categorical", "two-body"],
)
def test_tiny_cutoffs_are_refused(tmp_path, mutate, key):
    raw = tiny_config(tmp_path)
    mutate(raw)
    msg = config_error(raw, check_files=False)
    assert msg.startswith(f"{key} is below the smallest cutoff potune accepts (1.0 Å)"), msg


def test_missing_gap_fit_is_refused_at_parse_time(tmp_path, monkeypatch):
    from potune.fitters import gap

    def missing():
        raise FileNotFoundError("gap_fit not found: install quippy-ase (make venv) or put gap_fit on PATH")

    monkeypatch.setattr(gap, "find_gap_fit", missing)
    raw = tiny_config(tmp_path)
    assert config_error(raw, check_programs=True) == (
        "fitter gap: gap_fit not found: install quippy-ase (make venv) or put gap_fit on PATH"
    )
    resolve_config(raw)  # not checked unless asked (jobs, tests; --sdm conda: the fitter's own env)
    exe = tmp_path / "gap_fit"
    exe.write_text("#!/bin/sh\n")
    monkeypatch.setattr(gap, "find_gap_fit", lambda: str(exe))
    assert config_error(raw, check_programs=True) == (
        f"fitter gap: {exe} is not executable (chmod +x, or put a working gap_fit on PATH)"
    )


@pytest.mark.parametrize("kind", ["missing", "not-executable"])
def test_a_fit_that_cannot_start_fails_saying_so(tmp_path, kind):
    from potune.cluster.runner import run_limited

    exe = tmp_path / "gap_fit"
    if kind == "not-executable":
        exe.write_text("#!/bin/sh\n")
    res = run_limited([str(exe), "x"], tmp_path / "fit.log", timeout_s=10, mem_limit_mb=100)
    assert res.status == "failed" and res.returncode is None
    why = "not found" if kind == "missing" else "not executable"
    assert res.reason.startswith(f"could not start {exe} ({why})"), res.reason
    assert f"({why})" in (tmp_path / "fit.log").read_text()


def test_gap_fit_missing_inside_a_job_is_a_failed_trial_not_a_crash(tmp_path, monkeypatch):
    """Before #19 the job crashed, was retried with more memory and recorded as 'killed from
    outside, raise resources.fit.mem_mb'."""
    from potune.fitters import gap

    def missing():
        raise FileNotFoundError("gap_fit not found: install quippy-ase (make venv) or put gap_fit on PATH")

    monkeypatch.setattr(gap, "find_gap_fit", missing)
    res = gap.fit({"cutoff": 4.0, "n_sparse": 5}, {}, TRAIN, tmp_path / "model", tmp_path / "fit.log", [14])
    assert res.status == "failed"
    assert (
        res.reason == "cannot start gap_fit: gap_fit not found: install quippy-ase (make venv) or put gap_fit on PATH"
    )


# ----------------------------------------------------------------------------- #19: errors that surfaced in a job
def test_kfold_with_more_folds_than_structures(tmp_path):
    raw = tiny_config(tmp_path)
    raw["split"] = {"method": "kfold", "k": 50}  # 41 structures to validate on (the isolated atom is not)
    msg = data_error(raw)
    assert msg == (
        f"{TRAIN}: split.k: k-fold with k=50 needs at least 50 structures to validate on, found 41 "
        "(config_types in split.always_train and isolated atoms are never validated on)"
    )


def test_kfold_counts_only_validable_structures(tmp_path):
    raw = tiny_config(tmp_path)
    raw["split"] = {"method": "kfold", "k": 25, "always_train": ["isolated_atom", "dia"]}  # 21 left
    assert "needs at least 25 structures to validate on, found 21" in data_error(raw)


def test_random_split_without_a_validation_structure(tmp_path):
    frames = frames_of()
    path = tmp_path / "one.xyz"
    path.write_text("".join(line + "\n" for f in frames[:2] for line in f))  # isolated atom + 1 dia
    msg = data_error(tiny_config(tmp_path, train=path, test=None))
    assert msg.startswith(f"{path}: split.fraction: the random split left no structure for validation")


@pytest.mark.parametrize(
    "content, expected",
    [
        ("optimizer:\n  kind: bayes\n", "optimizer.priors: {p} lacks column(s)"),
        ("iteration,trial,cutoff\n0,t00,4.0\n", "optimizer.priors: {p} lacks column(s) ['n_max', 'delta',"),
        ("", "optimizer.priors: {p} is not a trial table"),
    ],
    ids=["yaml", "missing-columns", "empty"],
)
def test_priors_that_are_not_a_trial_table(tmp_path, content, expected):
    p = tmp_path / "priors.csv"
    p.write_text(content)
    raw = tiny_config(tmp_path)
    raw["optimizer"]["priors"] = str(p)
    assert config_error(raw).startswith(expected.format(p=p))


# ----------------------------------------------------------------------------- #19: a finished run is never replaced silently
def recorded(tmp_path: Path, raw: dict) -> Path:
    """A run folder whose run/config.yaml records ``raw`` resolved (as record_run writes it)."""
    from potune.io import write_yaml

    cfg = resolve_config(raw)
    run = Path(cfg["results_dir"]) / cfg["run_name"]
    write_yaml(run / "run" / "config.yaml", cfg)
    return run / "run" / "config.yaml"


SEARCH_CHANGES = [
    (lambda c: c["space"]["cutoff"].update(high=5.5), ["space.cutoff.high: 5.0 -> 5.5"]),
    (lambda c: c["fixed"].update(n_sparse=20), ["fixed.n_sparse: 15 -> 20"]),
    (lambda c: c["optimizer"].update(seed=8, batch_size=3), ["optimizer.batch_size: 2 -> 3", "optimizer.seed: 7 -> 8"]),
    (lambda c: c["loss"].update(alpha=0.9), ["loss.alpha: 0.5 -> 0.9"]),
    (lambda c: c["split"].update(seed=2), ["split.seed: 1 -> 2"]),
    (lambda c: c["gap"].update(sparse_jitter=1e-6), ["gap.sparse_jitter: 1e-08 -> 1e-06"]),
    (lambda c: c["data"].update(test=None), ["data.test: "]),
    (lambda c: c.update(space=dict(reversed(list(c["space"].items())))), ["space (order): "]),
]


@pytest.mark.parametrize(
    "mutate, expected",
    SEARCH_CHANGES,
    ids=["bound", "fixed", "optimizer", "loss", "split", "fitter-settings", "data", "space-order"],
)
def test_another_search_into_a_finished_run_is_refused(tmp_path, mutate, expected):
    from potune.config import check_same_search

    raw = tiny_config(tmp_path)
    rec = recorded(tmp_path, raw)
    mutate(raw)
    with pytest.raises(ConfigError) as exc:
        check_same_search(resolve_config(raw), rec, override="add `--config overwrite=true`")
    msg = str(exc.value)
    assert msg.startswith(f"run 'tiny' in {rec.parent.parent} was a different search (see {rec}): "), msg
    for part in expected:
        assert part in msg, msg
    assert "choose a new run_name, or add `--config overwrite=true` to replace them" in msg


def test_extending_or_rereporting_a_finished_run_is_not_refused(tmp_path):
    from potune.config import check_same_search

    raw = tiny_config(tmp_path)
    rec = recorded(tmp_path, raw)
    raw["stop"] = {"max_iterations": 5, "target_loss": 0.01, "patience": 3, "max_walltime_min": 60}
    raw["reference"] = {"label": "other", "energy_rmse_mev": 1.0}
    raw["resources"]["fit"]["mem_mb"] = 9000
    raw["kernel"] = {"n_sample": 10, "figure": False}  # a joint search's kernel settings: figures only
    raw["fixed"] = dict(reversed(list(raw["fixed"].items())))  # key order outside space means nothing
    check_same_search(resolve_config(raw), rec, override="x")
    check_same_search(resolve_config(raw), tmp_path / "no" / "config.yaml", override="x")  # no earlier run


@pytest.mark.parametrize("recorded_as", ["false", "absent"])
def test_run_recorded_before_a_default_changed_goes_on_as_it_was(tmp_path, recorded_as):
    """optimizer.log_loss became true by default (CHANGED_DEFAULTS): a run recorded with the old
    default false (or before the key existed) whose config leaves the key out goes on with false,
    as the search it is, and says so; a config that sets the key, or a new run, gets what it asks."""
    from potune.config import CHANGED_DEFAULTS, check_same_search, keep_recorded_defaults
    from potune.io import read_yaml, write_yaml

    assert CHANGED_DEFAULTS["optimizer.log_loss"][0] is False
    raw = tiny_config(tmp_path)
    assert "log_loss" not in raw["optimizer"] and resolve_config(raw)["optimizer"]["log_loss"] is True
    rec = recorded(tmp_path, raw)
    old = read_yaml(rec)
    if recorded_as == "absent":
        del old["optimizer"]["log_loss"]
    else:
        old["optimizer"]["log_loss"] = False
    write_yaml(rec, old)
    cfg, notes = keep_recorded_defaults(resolve_config(raw), raw, rec)
    assert cfg["optimizer"]["log_loss"] is False and len(notes) == 1
    assert notes[0].startswith("optimizer.log_loss: False, as run 'tiny' was recorded (the default until 2026-12-03")
    check_same_search(cfg, rec, override="x")  # the same search: goes on
    # through the workflow: a dry run into that folder is not refused and says why
    proc = run_snakemake(tmp_path, raw)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "potune: optimizer.log_loss: False, as run 'tiny' was recorded" in proc.stderr
    # the user asks for log_loss: true: a different search, refused as any other
    asked = {**raw, "optimizer": {**raw["optimizer"], "log_loss": True}}
    kept, notes = keep_recorded_defaults(resolve_config(asked), asked, rec)
    assert kept["optimizer"]["log_loss"] is True and not notes
    with pytest.raises(ConfigError, match=r"optimizer.log_loss: False -> True"):
        check_same_search(kept, rec, override="x")
    # no earlier run: the current default
    fresh, notes = keep_recorded_defaults(resolve_config(raw), raw, tmp_path / "none" / "config.yaml")
    assert fresh["optimizer"]["log_loss"] is True and not notes


# ----------------------------------------------------------------------------- #19: one driver per run folder
def test_second_driver_on_a_run_folder_is_refused(tmp_path):
    import json
    import socket

    from potune.cluster.resume import DRIVER_LOCK, DriverLockError, acquire_driver_lock, release_driver_lock

    run = tmp_path / "results" / "tiny"
    lock = acquire_driver_lock(run, workdir=tmp_path)
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert acquire_driver_lock(run) == lock  # the same driver again (Snakemake may parse twice)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(), "cwd": "/elsewhere"}))
        with pytest.raises(DriverLockError) as exc:
            acquire_driver_lock(run)
        assert f"is held by pid {other.pid} on host {socket.gethostname()}, started in /elsewhere" in str(exc.value)
        assert "snakemake --unlock" in str(exc.value)
        release_driver_lock(run)  # not ours: kept
        assert lock.exists()
    finally:
        other.kill()
        other.wait()
    acquire_driver_lock(run)  # its driver died (kill -9): taken over
    assert json.loads((run / DRIVER_LOCK).read_text())["pid"] == os.getpid()
    release_driver_lock(run)
    assert not lock.exists()
    lock.write_text(json.dumps({"pid": 1, "host": "login-other", "cwd": "/x"}))  # another host
    with pytest.raises(DriverLockError):
        acquire_driver_lock(run)
    release_driver_lock(run, force=True)  # what `snakemake --unlock` does
    assert not lock.exists()


# ----------------------------------------------------------------------------- #19: through Snakemake
def test_duplicate_key_in_the_configfile_through_snakemake(tmp_path):
    raw = tiny_config(tmp_path)
    text = yaml.safe_dump(raw, sort_keys=False) + "optimizer:\n  kind: random\n"
    cfg_file = tmp_path / "dup.yaml"
    cfg_file.write_text(text)
    line = text.splitlines().index("optimizer:", text.splitlines().index("optimizer:") + 1) + 1
    proc = subprocess.run(
        [str(SNAKEMAKE), "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)]
        + ["--cores", "1", "--configfile", str(cfg_file)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"potune: {cfg_file}: line {line}: key 'optimizer' given twice in one mapping" in out, out[-2000:]
    assert "Traceback" not in out


def test_nan_lattice_stops_a_dry_run(tmp_path, earlier_results):
    """Before #19 this passed `snakemake -n` and failed after the whole search (dimer figure)."""
    path = variant(tmp_path, "nan_lattice.xyz", sub_comment('Lattice="4.053009', 'Lattice="nan'))
    before = digest(earlier_results)
    proc = run_snakemake(tmp_path, tiny_config(tmp_path, train=path))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"potune: {path}: frame 2 (0-based, comment line 9): the cell (Lattice) contains NaN/inf" in out
    assert "Traceback" not in out and digest(earlier_results) == before


def test_changed_search_into_a_finished_run_through_snakemake(tmp_path, earlier_results):
    raw = tiny_config(tmp_path)
    recorded(tmp_path, raw)
    raw["space"]["cutoff"]["high"] = 5.5
    before = digest(earlier_results)
    proc = run_snakemake(tmp_path, raw, dry=False)  # a real run: nothing may start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "potune: run 'tiny' in " in out and "space.cutoff.high: 5.0 -> 5.5" in out, out[-2000:]
    assert "add `--config overwrite=true`" in out and "Traceback" not in out
    assert digest(earlier_results) == before
    proc = run_snakemake(tmp_path, raw, extra=("--config", "overwrite=true"))  # the explicit override
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]


def test_second_driver_from_another_directory_through_snakemake(tmp_path):
    """Snakemake's own lock is per working directory; potune's is per run folder."""
    import json
    import socket

    raw = tiny_config(tmp_path)
    run = tmp_path / "results" / "tiny"
    run.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock = run / ".potune-driver.lock"
        lock.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(), "cwd": "/other/dir"}))
        proc = run_snakemake(tmp_path, raw, dry=False)
    finally:
        other.kill()
        other.wait()
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"potune: another driver is running this search: {run} is held by pid {other.pid}" in out, out[-2000:]
    assert "Traceback" not in out and not (run / "split").exists()


@pytest.mark.parametrize("exc", [PermissionError(13, "Permission denied"), ImportError("No module named 'lammps'")])
def test_a_fitter_that_cannot_run_is_a_failed_trial(tmp_path, monkeypatch, exc):
    """Any fitter: the job records the failure and its reason instead of crashing (a crashed
    job is retried as if killed for memory)."""
    import json

    from potune.fitters import gap
    from potune.steps.fit import fit_step

    def broken(*args, **kwargs):
        raise exc

    monkeypatch.setattr(gap, "fit", broken)
    params = tmp_path / "t00.yaml"
    params.write_text(yaml.safe_dump({"trial_id": "0-00", "point": {"cutoff": 4.0}, "fixed": {}, "seed": 1}))
    out = tmp_path / "fold0"
    result = fit_step(
        params, TRAIN, out / "model", out / "fit.json", out / "fit.log", "gap", {}, mem_mb=2000, attempt=1
    )
    assert result["status"] == "failed"
    assert result["reason"] == f"cannot run fitter gap: {type(exc).__name__}: {exc}"
    assert json.loads((out / "fit.json").read_text())["reason"] == result["reason"]
    assert result["reason"] in (out / "fit.log").read_text()


def test_stage1_priors_that_are_not_a_trial_table(tmp_path):
    raw = tiny_config(tmp_path)
    raw["strategy"] = "two_stage"
    raw["fixed"].pop("l_max")
    raw["stage1"] = {"space": {"l_max": {"type": "integer", "low": 2, "high": 4}}}
    raw["stage1"]["optimizer"] = {"priors": str(tmp_path / "missing.csv")}
    assert config_error(raw) == f"stage1.optimizer.priors: file not found: {tmp_path / 'missing.csv'}"
    (tmp_path / "p.csv").write_text("iteration,trial,cutoff,status,loss\n0,t00,4.0,ok,1.0\n")
    raw["stage1"]["optimizer"] = {"priors": str(tmp_path / "p.csv")}
    assert config_error(raw).startswith(f"stage1.optimizer.priors: {tmp_path / 'p.csv'} lacks column(s) ['l_max']")
