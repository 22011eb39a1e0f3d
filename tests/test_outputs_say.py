"""Outputs that never mislead (#17): summary.md and the progress lines say when there is no
test set, whether validation numbers are means over folds, when the refit or its test failed,
when the best trial sits on a bound; the total fit time counts SNAP descriptor jobs; the
convergence plot's iteration colour bar has integer ticks; sigma_virial is refused."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import yaml

from potune.config import resolve_config
from potune.errors import ConfigError
from potune.search.space import Space
from potune.steps.report import summary_step

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "cutoff": {"type": "real", "low": 3.5, "high": 5.0},
    "n_max": {"type": "integer", "low": 2, "high": 4},
    "delta": {"type": "real", "low": 0.1, "high": 3.0, "prior": "log-uniform"},
    "sparse_method": {"type": "categorical", "values": ["random", "cur_points"]},
}


def test_on_bounds_names_the_bound():
    space = Space.from_config(SPACE)
    assert space.on_bounds({"cutoff": 4.2, "n_max": 3, "delta": 1.0, "sparse_method": "random"}) == []
    hits = space.on_bounds({"cutoff": 4.9999, "n_max": 2, "delta": 3.0, "sparse_method": "random"})
    assert hits == ["cutoff = 4.9999 (upper bound 5)", "n_max = 2 (lower bound 2)", "delta = 3 (upper bound 3)"]
    assert space.on_bounds({"cutoff": 4.9, "n_max": 3, "delta": 0.101}) == ["delta = 0.101 (lower bound 0.1)"]


def run_summary(tmp_path, cfg_over=None, best_over=None, refit=None, test=None, descriptors=(), extra_inputs=None):
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    pd.DataFrame(
        {
            "iteration": [0, 0],
            "trial": ["t00", "t01"],
            "trial_id": ["0-00", "0-01"],
            "status": ["ok", "ok"],
            "reason": ["", ""],
            "loss": [0.2, 0.1],
            "fit_time_s": [10.0, 20.0],
        }
    ).to_csv(run / "trials.csv", index=False)
    (run / "stop.yaml").write_text(yaml.safe_dump({"reason": "max_iterations (1) reached"}))
    point = {"cutoff": 4.2, "n_max": 3, "delta": 1.0, "sparse_method": "random"}
    best = {
        "status": "ok",
        "trial_id": "0-01",
        "loss": 0.1,
        "energy_rmse_mev": 5.0,
        "force_rmse": 0.2,
        "hyperparameters": point,
        "point": point,
        **(best_over or {}),
    }
    (run / "best" / "best.yaml").write_text(yaml.safe_dump(best))
    inputs = {"table": run / "trials.csv", "stop": run / "stop.yaml", "best": run / "best" / "best.yaml"}
    if refit is not None:
        (run / "best" / "fit.json").write_text(json.dumps(refit))
        inputs["refit"] = run / "best" / "fit.json"
    if test is not None:
        (run / "best" / "test_metrics.json").write_text(json.dumps(test))
        inputs["test"] = run / "best" / "test_metrics.json"
    inputs.update(extra_inputs or {})
    for i, wall in enumerate(descriptors):
        d = run / "descriptors" / "fold0" / f"{i:016x}"
        d.mkdir(parents=True)
        (d / "meta.json").write_text(json.dumps({"status": "ok", "wall_s": wall}))
    cfg = {
        "run_name": "t",
        "fitter": "gap",
        "optimizer": {"kind": "bayes", "batch_size": 2, "seed": 0},
        "loss": {"kind": "weighted", "alpha": 0.5},
        "space": SPACE,
        "data": {"train": "a.xyz", "test": "b.xyz"},
        "split": {"method": "random", "fraction": 0.2},
        **(cfg_over or {}),
    }
    return summary_step(cfg, inputs, run / "summary.md")


OK_REFIT = {"status": "ok", "reason": "", "wall_s": 3.0}
OK_TEST = {"status": "ok", "energy_rmse_mev": 4.0, "force_rmse": 0.3}


def test_summary_without_test_set_says_so(tmp_path, capsys):
    text = run_summary(tmp_path, {"data": {"train": "a.xyz", "test": None}}, refit=OK_REFIT)
    assert "No test set (`data.test` not given): the refitted potential was not evaluated" in text
    assert "no test set (data.test not given)" in capsys.readouterr().out
    assert yaml.safe_load((tmp_path / "run" / "best" / "best.yaml").read_text())["test"]["status"] == "none"
    assert "No test set" not in run_summary(tmp_path / "b", refit=OK_REFIT, test=OK_TEST)
    assert yaml.safe_load((tmp_path / "b" / "run" / "best" / "best.yaml").read_text())["refit"]["status"] == "ok"


def test_summary_says_mean_over_folds(tmp_path):
    text = run_summary(tmp_path, {"split": {"method": "kfold", "k": 3}}, refit=OK_REFIT, test=OK_TEST)
    assert "3-fold cross-validation; every validation number is the mean over the folds" in text
    assert "one validation set" in run_summary(tmp_path / "b", refit=OK_REFIT, test=OK_TEST)


def test_total_fit_time_counts_descriptor_jobs(tmp_path):
    text = run_summary(tmp_path, {"fitter": "snap"}, refit=OK_REFIT, test=OK_TEST, descriptors=(5.0, 7.0))
    assert "total fit time: 42 s (fits 30 s + SNAP descriptor jobs 12 s)" in text


def test_best_on_a_bound_is_stated(tmp_path):
    point = {"cutoff": 5.0, "n_max": 3, "delta": 1.0, "sparse_method": "random"}
    text = run_summary(tmp_path, best_over={"point": point}, refit=OK_REFIT, test=OK_TEST)
    assert "sits on a bound of the search space: cutoff = 5 (upper bound 5)" in text
    assert "bound" not in run_summary(tmp_path / "b", refit=OK_REFIT, test=OK_TEST)


def test_refit_and_test_failures_are_stated(tmp_path):
    refit = {"status": "failed", "reason": "gap_fit killed by signal 9", "wall_s": 1.0}
    best_file = tmp_path / "run" / "best" / "best.yaml"
    text = run_summary(tmp_path, refit=refit, test={"status": "failed", "reason": "no test errors: the refit failed"})
    assert "## Refit failed" in text and "gap_fit killed by signal 9" in text
    assert "| potune |" not in text
    best = yaml.safe_load(best_file.read_text())
    assert best["refit"] == {"status": "failed", "reason": "gap_fit killed by signal 9"}
    assert best["test"] == {"status": "failed", "reason": "no test errors: the refit failed"}
    # written before the refit's fit.json, and still older: Snakemake must not refit again
    assert best_file.stat().st_mtime_ns <= (tmp_path / "run" / "best" / "fit.json").stat().st_mtime_ns
    text = run_summary(tmp_path / "b", refit=OK_REFIT, test={"status": "failed", "reason": "prediction on the test"})
    assert "The test set was not evaluated: prediction on the test" in text and "| potune |" not in text


def test_convergence_colour_bar_has_integer_ticks(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from potune.report.plots import convergence_plot

    figs = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig))
    table = pd.DataFrame(
        {
            "iteration": [0, 0, 1, 1, 2, 2],
            "trial": ["t00", "t01"] * 3,
            "trial_id": ["0-00", "0-01", "1-00", "1-01", "2-00", "2-01"],
            "status": ["ok"] * 6,
            "loss": [0.5, 0.4, 0.3, 0.35, 0.2, 0.25],
        }
    )
    convergence_plot(table, tmp_path / "c.png", tmp_path / "c.csv")
    cbar_ax = figs[-1].axes[-1]
    cbar_ax.figure.canvas.draw()
    ticks = [t for t in cbar_ax.get_yticks() if 0 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_sigma_virial_is_refused():
    cfg = yaml.safe_load((ROOT / "tests" / "configs" / "tiny.yaml").read_text())
    for k in ("train", "test"):
        cfg["data"][k] = str(ROOT / cfg["data"][k])
    cfg["fixed"]["sigma_virial"] = 0.01
    with pytest.raises(ConfigError, match="sigma_virial: potune fits GAPs without virials"):
        resolve_config(cfg)
