"""Failures anywhere are outcomes (#17): the fitter's failures while validating or computing
kernel statistics are recorded failed trials, a job killed from outside (a real SIGSEGV or
SIGKILL) is recorded by its last attempt, and potune's own errors stop the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from ase.calculators.calculator import Calculator, all_changes

from potune import data as D
from potune.errors import FitterError, PotuneError
from potune.fitters import FITTERS
from potune.steps.collect import collect_step
from potune.steps.validate import validate_step

ROOT = Path(__file__).resolve().parents[1]
TINY_TEST = ROOT / "tests" / "data" / "si_tiny_test.xyz"
LOSS = {"kind": "weighted", "alpha": 0.5}


class FakeCalc(Calculator):
    implemented_properties = ["energy", "forces"]

    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.mode == "library":
            raise RuntimeError("quippy: cannot evaluate")
        if self.mode == "bug":
            raise TypeError("unsupported operand in potune")
        e = float("nan") if self.mode == "nan" else -5.0 * len(atoms)
        self.results = {"energy": e, "forces": np.zeros((len(atoms), 3))}


@pytest.fixture
def fake_fitter(monkeypatch):
    mod = types.ModuleType("potune_fake_fitter")
    mod.calculator = lambda model_dir: FakeCalc(Path(model_dir).name)
    monkeypatch.setitem(sys.modules, "potune_fake_fitter", mod)
    monkeypatch.setitem(FITTERS, "fake", "potune_fake_fitter")
    return "fake"


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "valid.xyz"
    frames = D.read_structures(
        TINY_TEST, require_forces=True, energy_key="energy", forces_key="forces", config_type_key="config_type"
    )
    D.write_structures(out, frames[:3])
    return out


def fold_dir(tmp_path: Path, trial="t00", trial_id="0-00", fit_status="ok") -> Path:
    d = tmp_path / "iter0" / trial / "fold0"
    d.mkdir(parents=True)
    fit = {"trial_id": trial_id, "status": fit_status, "reason": "" if fit_status == "ok" else "gap_fit died"}
    (d / "fit.json").write_text(json.dumps({**fit, "wall_s": 1.0, "peak_rss_mb": 10.0}))
    return d


def validate(d: Path, fitter: str, mode: str, valid_file, **kw) -> dict:
    return validate_step(
        d / "fit.json", d / mode, valid_file, d / "valid.json", fitter, LOSS, d / "valid_predictions.npz", **kw
    )


@pytest.mark.parametrize(
    ("mode", "words"),
    [("library", "RuntimeError: quippy: cannot evaluate"), ("nan", "non-finite prediction")],
)
def test_fitter_failure_while_predicting_is_a_failed_trial(tmp_path, fake_fitter, valid_file, mode, words):
    d = fold_dir(tmp_path)
    out = validate(d, fake_fitter, mode, valid_file)
    assert out["status"] == "failed" and out["reason"].startswith("prediction failed") and words in out["reason"]
    assert json.loads((d / "valid.json").read_text())["status"] == "failed"


def test_potune_error_while_predicting_stops_the_run(tmp_path, fake_fitter, valid_file):
    """A bug (here a TypeError) is raised, not recorded; the last attempt raises it again
    instead of recording the trial as killed."""
    d = fold_dir(tmp_path)
    with pytest.raises(TypeError, match="unsupported operand"):
        validate(d, fake_fitter, "bug", valid_file, attempt=1, max_attempts=2)
    assert not (d / "valid.json").exists()
    with pytest.raises(PotuneError, match="(?s)error of potune.*TypeError: unsupported operand"):
        validate(d, fake_fitter, "bug", valid_file, attempt=2, max_attempts=2)
    assert not (d / "valid.json").exists()


def _validate_in_subprocess(d: Path, valid_file, fault: str, attempt: int, max_attempts: int):
    code = (
        "import sys; from pathlib import Path; from potune.steps.validate import validate_step; "
        f"d = Path({str(d)!r}); "
        f"validate_step(d / 'fit.json', d / 'model', {str(valid_file)!r}, d / 'valid.json', 'gap', "
        f"{LOSS!r}, d / 'valid_predictions.npz', attempt={attempt}, max_attempts={max_attempts})"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow"), "POTUNE_TEST_FAULT": fault}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("sig", ["SIGSEGV", "SIGKILL"])
def test_validation_killed_is_recorded_by_its_last_attempt(tmp_path, valid_file, sig):
    """A real kill of the validating process: the job dies without a result; the last
    attempt records the trial as failed (naming the segfault) without predicting again."""
    d = fold_dir(tmp_path)
    proc = _validate_in_subprocess(d, valid_file, f"validate:{sig}:0-00", 1, 2)
    assert proc.returncode == -getattr(signal, sig), proc.stderr
    assert not (d / "valid.json").exists()
    proc = _validate_in_subprocess(d, valid_file, f"validate:{sig}:0-00", 2, 2)
    assert proc.returncode == 0, proc.stderr
    out = json.loads((d / "valid.json").read_text())
    assert out["status"] == "failed"
    assert out["reason"].startswith("validation killed from outside on 1 attempt(s)")
    assert "resources.validate" in out["reason"]
    assert ("Segmentation fault" in out["reason"]) == (sig == "SIGSEGV")


def test_fault_matches_its_trial_only(tmp_path, valid_file):
    d = fold_dir(tmp_path, trial_id="0-01", fit_status="failed")
    proc = _validate_in_subprocess(d, valid_file, "validate:SIGKILL:0-00", 1, 2)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((d / "valid.json").read_text())["reason"] == "gap_fit died"


def _proposal(tmp_path: Path, trial: str) -> None:
    p = tmp_path / "iter0" / "proposals"
    p.mkdir(parents=True, exist_ok=True)
    doc = {"iteration": 0, "trial": trial, "trial_id": f"0-{trial[1:]}", "point": {"cutoff": 4.0}, "fixed": {}}
    (p / f"{trial}.yaml").write_text(yaml.safe_dump(doc))


def _failed_valid(d: Path, exception: str) -> None:
    (d / "valid.json").write_text(
        json.dumps({"status": "failed", "reason": f"prediction failed: {exception}", "exception": exception})
    )


@pytest.mark.parametrize("same", [True, False])
def test_same_exception_in_every_trial_stops_the_search(tmp_path, same):
    dirs = {}
    for k, t in enumerate(["t00", "t01"]):
        _proposal(tmp_path, t)
        d = fold_dir(tmp_path, t, f"0-{t[1:]}")
        _failed_valid(d, "RuntimeError: no GAP label" if same else f"RuntimeError: structure {k}")
        dirs[t] = [str(d)]
    table = tmp_path / "iter0" / "table.csv"
    args = (["cutoff"], 0, None, tmp_path / "iter0" / "proposals", dirs, table)
    if same:
        with pytest.raises(PotuneError, match="same Python exception.*RuntimeError: no GAP label"):
            collect_step(*args)
        assert not table.exists()
    else:
        t = collect_step(*args)
        assert list(t["status"]) == ["failed", "failed"]


def test_kernel_step_records_fitter_failure_and_raises_bugs(tmp_path, monkeypatch):
    from potune.steps import stage1

    prop = tmp_path / "t00.yaml"
    prop.write_text(yaml.safe_dump({"iteration": 0, "trial": "t00", "trial_id": "0-00", "point": {"n_max": 3}}))
    monkeypatch.setattr(stage1, "read_environments", lambda f, cfg: [])

    def broken(exc):
        def f(*a, **k):
            raise exc

        return f

    monkeypatch.setattr(stage1, "descriptor_kernel_stats", broken(FitterError("quippy could not build descriptor")))
    out = stage1.kernel_step(prop, "x", tmp_path / "k.json", tmp_path / "h.csv", {}, {})
    assert out["status"] == "failed" and "quippy could not build" in out["reason"]
    monkeypatch.setattr(stage1, "descriptor_kernel_stats", broken(KeyError("n_sample")))
    with pytest.raises(KeyError):
        stage1.kernel_step(prop, "x", tmp_path / "k2.json", tmp_path / "h2.csv", {}, {})


def test_test_errors_record_a_failed_refit_or_prediction(tmp_path, fake_fitter, valid_file):
    from potune.steps.best import test_step
    from potune.steps.report import config_type_errors_step, dimer_step

    cfg = {"fitter": fake_fitter, "loss": LOSS, "reference": {}}
    best = tmp_path / "best"
    (best / "library").mkdir(parents=True)
    (best / "fit.json").write_text(json.dumps({"status": "failed", "reason": "gap_fit killed by signal 9"}))
    out = [best / "test_errors.csv", best / "test_predictions.npz", best / "test_metrics.json"]
    m = test_step(cfg, best / "library", valid_file, *out)
    assert m == {"status": "failed", "reason": "no test errors: the refit failed: gap_fit killed by signal 9"}
    assert json.loads(out[2].read_text()) == m and len(np.load(out[1]).files) == 0
    config_type_errors_step(out[0], tmp_path / "errors.png")  # a figure saying why, not a crash
    (best / "best.yaml").write_text(yaml.safe_dump({"hyperparameters": {"cutoff": 4.0}}))
    dimer_step({"fitter": fake_fitter}, best / "library", [valid_file], tmp_path / "dimer.png", tmp_path / "d.csv")
    assert (tmp_path / "errors.png").exists() and (tmp_path / "dimer.png").exists()

    (best / "fit.json").write_text(json.dumps({"status": "ok", "reason": "", "wall_s": 1.0}))
    m = test_step(cfg, best / "library", valid_file, *out)
    assert m["status"] == "failed" and "prediction on the test set failed" in m["reason"]
    assert "quippy: cannot evaluate" in m["reason"]
    (best / "ok").mkdir()
    m = test_step(cfg, best / "ok", valid_file, *out)
    assert m["status"] == "ok" and m["energy_rmse_mev"] > 0


@pytest.fixture(scope="module")
def gap_model(tmp_path_factory, valid_file):
    """A real (tiny) GAP fitted by fit_step: fit.json and model/gap.xml."""
    from potune.steps.fit import fit_step

    tmp = tmp_path_factory.mktemp("gap")
    train = tmp / "train.xyz"
    frames = D.read_structures(
        ROOT / "tests" / "data" / "si_tiny_train.xyz",
        require_forces=True,
        energy_key="energy",
        forces_key="forces",
        config_type_key="config_type",
    )
    D.write_structures(train, frames)
    point = {"n_sparse": 15, "sparse_method": "random", "n_max": 2, "l_max": 2, "cutoff": 4.0, "zeta": 2}
    prop = tmp / "t00.yaml"
    prop.write_text(yaml.safe_dump({"iteration": 0, "trial": "t00", "trial_id": "0-00", "point": point}))
    d = tmp / "iter0" / "t00" / "fold0"
    res = fit_step(prop, train, d / "model", d / "fit.json", d / "fit.log", "gap", {"descriptor": "soap"})
    assert res["status"] == "ok", res
    return d


def _validate_gap_in_subprocess(d: Path, valid_file, mem_mb: float):
    code = (
        "from pathlib import Path; from potune.steps.validate import validate_step; "
        f"d = Path({str(d)!r}); "
        f"validate_step(d / 'fit.json', d / 'model', {str(valid_file)!r}, d / 'valid.json', 'gap', "
        f"{LOSS!r}, d / 'valid_predictions.npz', mem_mb={mem_mb})"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    env.pop("POTUNE_TEST_FAULT", None)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_validation_over_its_memory_limit_is_a_failed_trial(gap_model, valid_file):
    """A real memory limit: quippy's prediction (~95 MB resident with Python) in a job of
    80 MB (limit 76 MB) is stopped and recorded as out of memory; with 4000 MB it passes."""
    d = gap_model
    proc = _validate_gap_in_subprocess(d, valid_file, 80)
    assert proc.returncode == 0, proc.stderr
    out = json.loads((d / "valid.json").read_text())
    assert out["status"] == "failed" and out["reason"].startswith("out of memory"), out
    assert "limit of 76 MB" in out["reason"] and "resources.validate.mem_mb" in out["reason"]
    assert len(np.load(d / "valid_predictions.npz").files) == 0
    proc = _validate_gap_in_subprocess(d, valid_file, 4000)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((d / "valid.json").read_text())["status"] == "ok"


def test_stage1_kernel_job_killed_is_recorded_by_its_last_attempt(tmp_path):
    """A real segfault of a stage-1 kernel job; its last attempt records the descriptor
    trial as failed without computing again."""
    prop = tmp_path / "t00.yaml"
    prop.write_text(yaml.safe_dump({"iteration": 0, "trial": "t00", "trial_id": "0-00", "point": {"n_max": 3}}))
    d = tmp_path / "iter0" / "t00"
    d.mkdir(parents=True)

    def run(attempt):
        code = (
            "from potune.steps.stage1 import kernel_step; "
            f"kernel_step({str(prop)!r}, 'unused.xyz', {str(d / 'kernel.json')!r}, {str(d / 'hist.csv')!r}, "
            f"{{}}, {{}}, attempt={attempt}, max_attempts=2)"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow"), "POTUNE_TEST_FAULT": "kernel:SIGSEGV"}
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)

    assert run(1).returncode == -signal.SIGSEGV
    proc = run(2)
    assert proc.returncode == 0, proc.stderr
    out = json.loads((d / "kernel.json").read_text())
    assert out["status"] == "failed" and out["reason"].startswith("kernel statistics killed from outside")
    assert "Segmentation fault" in out["reason"] and "resources.kernel" in out["reason"]


def test_test_errors_killed_is_recorded_by_its_last_attempt(tmp_path, fake_fitter, valid_file):
    from potune.steps.best import test_step

    best = tmp_path / "best"
    (best / "ok").mkdir(parents=True)
    (best / "fit.json").write_text(json.dumps({"status": "ok", "reason": "", "wall_s": 1.0}))
    (best / "test_metrics_attempts.jsonl").write_text(json.dumps({"attempt": 1, "pid": 5}) + "\n")
    out = [best / "test_errors.csv", best / "test_predictions.npz", best / "test_metrics.json"]
    cfg = {"fitter": fake_fitter, "loss": LOSS, "reference": {}}
    m = test_step(cfg, best / "ok", valid_file, *out, attempt=2, max_attempts=2)
    assert m["status"] == "failed" and m["reason"].startswith("test errors killed from outside on 1 attempt(s)")


def test_same_exception_in_every_stage1_trial_stops_stage1(tmp_path):
    from potune.steps.stage1 import collect_stage1

    props = tmp_path / "proposals"
    props.mkdir()
    files = {}
    for t in ("t00", "t01"):
        (props / f"{t}.yaml").write_text(
            yaml.safe_dump({"iteration": 0, "trial": t, "trial_id": f"0-{t[1:]}", "point": {"n_max": 3}})
        )
        f = tmp_path / f"{t}.json"
        f.write_text(json.dumps({"status": "failed", "reason": "x", "exception": "RuntimeError: no species"}))
        files[t] = str(f)
    cfg1 = {"space": {"n_max": {"type": "integer", "low": 2, "high": 4}}, "fixed": {}}
    with pytest.raises(PotuneError, match="stage 1: every descriptor trial.*RuntimeError: no species"):
        collect_stage1(cfg1, 0, None, props, files, tmp_path / "table.csv")


# ----------------------------------------------------------------------------- kernel and similarity figures
def _dimer_best(tmp_path):
    train = tmp_path / "dimers.xyz"
    D.write_structures(train, D.read_structures(ROOT / "data" / "misc" / "C_dimers_gap17.xyz.gz")[::3])
    best = tmp_path / "best.yaml"
    hp = {"cutoff": 4.0, "n_max": 3, "l_max": 3, "atom_sigma": 0.5, "zeta": 2}
    best.write_text(yaml.safe_dump({"trial_id": "0-00", "hyperparameters": hp}))
    return best, train


def _run_killed(step: str, args: str, tmp_path) -> int:
    """Run a figure step in a child process with POTUNE_TEST_FAULT=<step>:SIGKILL (a real
    kill, attempt 1 of 2); its return code."""
    code = f"from potune.steps.stage1 import *\n{args}"
    path = os.pathsep.join(filter(None, [str(ROOT / "workflow"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "POTUNE_TEST_FAULT": f"{step}:SIGKILL", "MPLBACKEND": "Agg", "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, timeout=120).returncode


@pytest.mark.parametrize("step", ["kernel_figure", "similarity_curve"])
def test_figure_jobs_killed_or_failing_are_recorded_and_bugs_raise(tmp_path, monkeypatch, step):
    from potune.steps import stage1

    best, train = _dimer_best(tmp_path)
    kcfg = {"n_sample": 20, "seed": 0, "bins": 10, "max_block_mb": 16}
    files = {
        "kernel_figure": ("kernel_hist.png", "kernel_hist.csv", "kernel_stats.json"),
        "similarity_curve": ("similarity.png", "similarity.csv", "similarity.json"),
    }[step]
    png, csv, js = (tmp_path / f for f in files)

    def run(attempt=1, max_attempts=None):
        if step == "kernel_figure":
            stage1.kernel_figure_step(best, train, {}, kcfg, png, csv, js, attempt, max_attempts)
        else:
            stage1.similarity_step(best, train, {}, 2, png, csv, js, attempt, max_attempts)
        return json.loads(js.read_text())

    assert run()["status"] == "ok" and png.stat().st_size > 0 and len(pd.read_csv(csv)) > 0
    # a real kill (SIGKILL) of attempt 1; attempt 2, the last, records it without computing
    call = {
        "kernel_figure": "kernel_figure_step(b, t, {}, k, p, c, j, 1, 2)",
        "similarity_curve": "similarity_step(b, t, {}, 2, p, c, j, 1, 2)",
    }
    values = ", ".join(repr(str(v)) for v in (best, train, png, csv, js))
    rc = _run_killed(step, f"b, t, p, c, j = {values}\nk = {kcfg!r}\n{call[step]}", tmp_path)
    assert rc == -9
    out = run(attempt=2, max_attempts=2)
    what = step.replace("_", " ")
    assert out["status"] == "failed" and out["reason"].startswith(f"{what} killed from outside on 1 attempt(s)"), out
    assert csv.read_text() == "" and png.stat().st_size > 0
    # quippy failing (a FitterError) or out of memory: recorded
    for exc in ("FitterError", "MemoryError"):
        monkeypatch.setenv("POTUNE_TEST_FAULT", f"{step}:{exc}")
        out = run()
        assert out["status"] == "failed" and "injected by POTUNE_TEST_FAULT" in out["reason"], out
    # a bug of potune: raised
    monkeypatch.setenv("POTUNE_TEST_FAULT", f"{step}:TypeError")
    with pytest.raises(TypeError):
        run()
