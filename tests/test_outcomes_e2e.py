"""End to end (#17): a validation job and the refit killed by real signals are recorded
outcomes and the search goes on; a k-fold run with two folds; an external validation file
without a test set."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from wfrun import ROOT, snakemake, tiny_config, trials

from potune import data as D

pytestmark = pytest.mark.slow


def test_kfold_run_with_a_killed_validation_and_a_killed_refit(tmp_path, monkeypatch):
    # trial 0-01's validation segfaults on every attempt; the refit is killed (SIGKILL)
    monkeypatch.setenv("POTUNE_TEST_FAULT", "validate:SIGSEGV:0-01,fit:SIGKILL:best*")
    cfg, run = tiny_config(tmp_path, split={"method": "kfold", "k": 2, "seed": 1})
    proc = snakemake(cfg, "--cores", "2")
    out = proc.stdout + proc.stderr
    t = trials(run)
    assert list(t["iteration"]) == [0, 0, 1, 1], "the search must go on"
    failed = t[t["trial_id"] == "0-01"].iloc[0]
    assert failed["status"] == "failed"
    assert failed["reason"].startswith("fold 0: validation killed from outside on 2 attempt(s)"), failed["reason"]
    assert "Segmentation fault" in failed["reason"]
    ok = t[t["trial_id"] != "0-01"]
    assert (ok["status"] == "ok").all() and (ok["n_folds"] == 2).all()
    # progress lines labelled by fold, and the trial's mean over folds
    assert "fold 0/2" in out and "fold 1/2" in out and "mean over 2 folds" in out
    # the best trial's validation predictions pool both folds
    n_valid = sum(len(D.read_normalised(run / "split" / f"fold{f}" / "valid.xyz")) for f in (0, 1))
    preds = np.load(run / "best" / "valid_predictions.npz")
    assert len(preds["energy_pred_per_atom"]) == n_valid
    # the refit's failure is stated; the table and the figures that need no refit are there
    summary = (run / "summary.md").read_text()
    assert "## Refit failed" in summary and "killed from outside" in summary
    assert "2-fold cross-validation; every validation number is the mean over the folds" in summary
    assert "| potune |" not in summary
    for f in ("convergence.png", "figures/parity.png", "figures/landscape.png", "figures/cost.png"):
        assert (run / f).stat().st_size > 0, f
    assert not (run / "best" / "potential" / "gap.xml").exists()
    best = yaml.safe_load((run / "best" / "best.yaml").read_text())
    assert best["refit"]["status"] == "failed" and "killed from outside" in best["refit"]["reason"]
    assert best["test"]["status"] == "failed"
    # recording the outcome in best.yaml does not make the next run refit
    proc = snakemake(cfg, "-n", "--cores", "2")  # summary.md records the cores
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-2000:]


def test_external_validation_file_without_test_set(tmp_path):
    valid = ROOT / "tests" / "data" / "si_tiny_test.xyz"
    cfg, run = tiny_config(
        tmp_path,
        data={"test": None, "validation": str(valid)},
        split={"method": "file"},
        stop={"max_iterations": 1},
    )
    proc = snakemake(cfg, "--cores", "2")
    out = proc.stdout + proc.stderr
    t = trials(run)
    assert len(t) == 2 and (t["status"] == "ok").all()
    n = len(D.read_normalised(run / "split" / "fold0" / "valid.xyz"))
    assert n == len(D.read_structures(valid))
    assert len(D.read_normalised(run / "split" / "full_train.xyz")) == len(
        D.read_structures(ROOT / "tests" / "data" / "si_tiny_train.xyz")
    )
    assert (run / "best" / "potential" / "gap.xml").exists()
    assert not (run / "best" / "test_errors.csv").exists()
    assert "no test set (data.test not given)" in out
    assert "No test set (`data.test` not given)" in (run / "summary.md").read_text()


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        # a bug of potune in one trial's validation: the run stops with the traceback
        ("validate:TypeError:0-00", ["TypeError: injected by POTUNE_TEST_FAULT", "error of potune"]),
        # the same exception failing every trial of the iteration: the run stops and says so
        ("validate:FitterError", ["every trial of iteration 0 (2) failed with the same Python exception"]),
    ],
)
def test_errors_of_potune_stop_the_run(tmp_path, monkeypatch, fault, words):
    monkeypatch.setenv("POTUNE_TEST_FAULT", fault)
    cfg, run = tiny_config(tmp_path, stop={"max_iterations": 1})
    proc = snakemake(cfg, "--cores", "2", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    logs = "".join(p.read_text(errors="replace") for p in (run / "logs").rglob("*.log")) + "".join(
        p.read_text(errors="replace") for p in run.rglob("validate.log")
    )
    for w in words:
        assert w in out + logs, w
    assert not (run / "trials.csv").exists() and not (run / "summary.md").exists()


def test_killed_snap_descriptor_jobs_are_failed_trials(tmp_path, monkeypatch):
    """Every SNAP descriptor job kills itself (SIGKILL): after its retries the last attempt
    records the cache as failed, every trial using it fails with that reason, the search
    goes on and ends normally with no successful trial."""
    monkeypatch.setenv("POTUNE_TEST_FAULT", "descriptors:SIGKILL")
    cfg, run = tiny_config(tmp_path, name="tiny-snap")
    raw = yaml.safe_load((ROOT / "tests" / "configs" / "tiny-snap.yaml").read_text())
    for k in ("train", "test"):
        raw["data"][k] = str(ROOT / raw["data"][k])
    raw["results_dir"] = str(tmp_path / "results")
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    snakemake(cfg, "--cores", "2")
    t = trials(run)
    assert list(t["iteration"]) == [0, 0, 1, 1]
    assert (t["status"] == "failed").all()
    assert all(r.startswith("descriptors: killed from outside on 2 attempt(s)") for r in t["reason"]), list(t["reason"])
    assert "No trial succeeded" in (run / "summary.md").read_text()


def test_killed_kernel_figure_is_a_recorded_outcome(tmp_path, monkeypatch):
    """The kernel figure job kills itself (SIGKILL) on every attempt: the last attempt records
    it in figures/kernel_stats.json, summary.md states it, the run exits 0 with its other
    results (the refit, the test errors, the figures)."""
    monkeypatch.setenv("POTUNE_TEST_FAULT", "kernel_figure:SIGKILL")
    cfg, run = tiny_config(tmp_path, stop={"max_iterations": 1})
    proc = snakemake(cfg, "--cores", "2")  # check=True: exit 0
    stats = yaml.safe_load((run / "figures" / "kernel_stats.json").read_text())
    assert stats["status"] == "failed", stats
    assert stats["reason"].startswith("kernel figure killed from outside on 2 attempt(s)"), stats["reason"]
    summary = (run / "summary.md").read_text()
    assert "**Kernel figure failed: kernel figure killed from outside on 2 attempt(s)" in summary
    assert "| potune |" in summary and (run / "best" / "potential" / "gap.xml").exists()
    for f in ("convergence.png", "figures/parity.png", "figures/kernel_hist.png"):
        assert (run / f).stat().st_size > 0, f
    assert "KERNEL FIGURE FAILED" in proc.stdout + proc.stderr


def test_bug_in_the_kernel_figure_stops_the_run(tmp_path, monkeypatch):
    """A Python exception of potune's own code in the kernel figure job (injected TypeError)
    is not recorded as a failed figure: the run stops (exit != 0) with the traceback."""
    monkeypatch.setenv("POTUNE_TEST_FAULT", "kernel_figure:TypeError")
    cfg, run = tiny_config(tmp_path, stop={"max_iterations": 1})
    proc = snakemake(cfg, "--cores", "2", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    log = (run / "logs" / "kernel_figure.log").read_text(errors="replace")
    assert "TypeError: injected by POTUNE_TEST_FAULT" in out + log and "error of potune" in out + log
    assert not (run / "figures" / "kernel_stats.json").exists() and not (run / "summary.md").exists()
