"""Quiet progress of a search (potune.progress, python -m potune.run): the lines made from a
run folder written with the real writers, and the entry point on the tiny real search."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from potune.io import write_json, write_yaml
from potune.progress import Watcher, duration, eta_s, finished_trials, status_text, warning_lines
from potune.run import parallel_fits, run_config, run_dir_of, tail
from potune.trials import write_table

ROOT = Path(__file__).resolve().parents[1]


def _trial(run_dir: Path, it: int, k: int, loss: float | None, started: float, ended: float, fit_s: float = 3.0):
    """One trial's fold 0 as the fit and validate jobs leave it (None: a failed fit)."""
    d = run_dir / f"iter{it}" / f"t{k:02d}" / "fold0"
    d.mkdir(parents=True, exist_ok=True)
    tid = f"{it}-{k:02d}"
    status = "ok" if loss is not None else "failed"
    write_json(
        d / "fit.json", {"trial_id": tid, "status": status, "reason": "" if loss else "gap_fit: boom", "wall_s": fit_s}
    )
    (d / "attempts.jsonl").write_text(json.dumps({"attempt": 1, "started": started}) + "\n")
    if loss is None:
        write_json(d / "valid.json", {"status": "failed", "reason": "gap_fit: boom"})
    else:
        write_json(
            d / "valid.json",
            {
                "status": "ok",
                "reason": "",
                "loss": loss,
                "energy_rmse_mev": 10 * loss,
                "force_rmse": loss,
                "n_atoms": 8,
            },
        )
    os.utime(d / "valid.json", (ended, ended))
    return tid


def _proposals(run_dir: Path, it: int, n: int, when: float) -> None:
    f = run_dir / f"iter{it}" / "proposals" / "meta.yaml"
    write_yaml(f, {"iteration": it, "n_trials": n, "started_at": when})
    os.utime(f, (when, when))


@pytest.fixture
def run_folder(tmp_path):
    """Iteration 0 of a search with a budget of 3 x 2 trials: one trial ok, one failed."""
    run_dir = tmp_path / "results" / "demo"
    t0 = 1_000_000.0
    _proposals(run_dir, 0, 2, t0 + 5)
    _trial(run_dir, 0, 0, 0.25, started=t0 + 10, ended=t0 + 40)
    _trial(run_dir, 0, 1, None, started=t0 + 10, ended=t0 + 30)
    return run_dir, t0


def test_finished_trials_read_the_job_files(run_folder):
    run_dir, t0 = run_folder
    trials = finished_trials(run_dir, n_folds=1)
    assert set(trials) == {"0-00", "0-01"}
    ok, bad = trials["0-00"], trials["0-01"]
    assert ok.status == "ok" and ok.loss == 0.25 and ok.wall_s == pytest.approx(30.0)
    assert bad.status == "failed" and "boom" in bad.reason and math.isnan(bad.loss)
    # a trial whose validation is missing is not finished
    (run_dir / "iter0" / "t01" / "fold0" / "valid.json").unlink()
    assert set(finished_trials(run_dir, n_folds=1)) == {"0-00"}
    # two folds: not finished until fold 1 is validated too
    assert finished_trials(run_dir, n_folds=2) == {}
    # a nested SNAP trial ranked by its inner CV loss (snap.outer_loss cv) shows that loss
    fit = run_dir / "iter0" / "t00" / "fold0" / "fit.json"
    cv = {"outer_loss": "cv", "loss": 0.5, "energy_rmse_mev": 4.0, "force_rmse": 0.2, "folds": 3}
    write_json(fit, {**json.loads(fit.read_text()), "inner": cv})
    ok = finished_trials(run_dir, n_folds=1)["0-00"]
    assert (ok.loss, ok.energy_rmse_mev, ok.force_rmse) == (0.5, 4.0, 0.2)


def test_estimate_and_durations():
    # 4 trials left of 6, 30 s each, 2 at a time, then one more for the refit
    assert eta_s(2, 6, 30.0, 2) == pytest.approx(4 * 30 / 2 + 30)
    assert eta_s(6, 6, 30.0, 2, refit_left=False) == 0.0
    assert eta_s(2, None, 30.0, 2) is None and eta_s(2, 6, None, 2) is None
    assert [duration(s) for s in (None, 42.4, 185, 7620)] == ["?", "42 s", "3 min 05 s", "2 h 07 min"]


def test_watcher_lines_in_order_with_state(run_folder):
    run_dir, t0 = run_folder
    w = Watcher(run_dir, n_folds=1, budget=6, slots=2, start=t0)
    lines = w.poll(now=t0 + 50)
    assert len(lines) == 3, lines
    assert lines[0].startswith("iteration 0: 2 trial(s) proposed | trials 0/6, best -, 5 s used, ~? left")
    assert lines[1].startswith("trial 0-01 FAILED (gap_fit: boom)")
    assert "trials 1/6" in lines[1] and "best -" in lines[1]
    # the failed trial took 20 s, the ok one 30 s: mean 25 s; 4 left, 2 at a time, + refit
    assert lines[2] == (
        "trial 0-00: loss 0.25 (E 2.50 meV/atom, F 0.2500 eV/A, fit 3 s) | trials 2/6, best 0.25 (0-00), "
        f"40 s used, ~{duration(4 * 25 / 2 + 25)} left"
    )
    assert w.poll(now=t0 + 60) == []  # nothing new
    _trial(run_dir, 1, 0, 0.125, started=t0 + 61, ended=t0 + 70)
    (line,) = w.poll(now=t0 + 71)
    assert line.startswith("trial 1-00: loss 0.125") and "trials 3/6, best 0.125 (1-00)" in line
    # the refit, then (a later poll) the test: no refit left in the estimate of either
    write_json(run_dir / "best" / "fit.json", {"trial_id": "best (1-00)", "status": "ok", "wall_s": 4.0})
    os.utime(run_dir / "best" / "fit.json", (t0 + 78, t0 + 78))
    (line,) = w.poll(now=t0 + 80)
    assert line.startswith("refit of the best (1-00): done (fit 4 s) | trials 3/6") and line.endswith(
        f"~{duration(3 * (20 + 30 + 9) / 3 / 2)} left"
    )
    write_json(run_dir / "best" / "test_metrics.json", {"status": "ok", "energy_rmse_mev": 4.5, "force_rmse": 0.125})
    os.utime(run_dir / "best" / "test_metrics.json", (t0 + 88, t0 + 88))
    (line,) = w.poll(now=t0 + 90)
    assert line.startswith("test set: E 4.50 meV/atom, F 0.1250 eV/A | ") and line.endswith(
        f"~{duration(3 * (20 + 30 + 9) / 3 / 2)} left"
    )


def test_watcher_resumed_run_counts_earlier_trials(run_folder):
    run_dir, t0 = run_folder
    w = Watcher(run_dir, n_folds=1, budget=6, slots=1, start=t0 + 1000)
    (line,) = w.poll(now=t0 + 1001)
    assert line.startswith("resuming: 2 trial(s) done before this run | trials 2/6, best 0.25 (0-00)")


def test_final_lines_from_the_trial_table(run_folder):
    run_dir, t0 = run_folder
    table = pd.DataFrame(
        {
            "iteration": [0, 0],
            "trial_id": ["0-00", "0-01"],
            "status": ["ok", "failed"],
            "reason": ["", "boom"],
            "loss": [0.25, None],
        }
    )
    write_table(run_dir / "trials.csv", table)
    write_json(run_dir / "best" / "test_metrics.json", {"status": "ok", "energy_rmse_mev": 4.5, "force_rmse": 0.125})
    (run_dir / "summary.md").write_text("# potune\n\n**Warning: the best trial is poor.**\n\nBest trial 0-00\n")
    w = Watcher(run_dir, n_folds=1, budget=6, slots=1, start=t0)
    lines = w.final_lines(run_dir / "logs" / "snakemake.log", now=t0 + 125)
    assert lines[0] == "done in 2 min 05 s: 2 trial(s) of 6, 1 failed; best loss 0.25 (trial 0-00)"
    assert lines[1] == "test set: E 4.50 meV/atom, F 0.1250 eV/A"
    assert lines[2] == "Warning: the best trial is poor."
    assert lines[-1].endswith("logs/snakemake.log") and str(run_dir) in lines[-2]
    assert warning_lines(run_dir / "nothing.md") == []


def test_status_without_budget():
    assert status_text({}, None, 3.0, 1) == "trials 0, best -, 3 s used, ~? left"


def test_run_folder_and_slots_from_the_snakemake_arguments(tmp_path):
    cfg_file = tmp_path / "my.yaml"
    cfg = yaml.safe_load((ROOT / "tests" / "configs" / "tiny.yaml").read_text())
    cfg["results_dir"] = str(tmp_path / "out")
    cfg_file.write_text(yaml.safe_dump(cfg))
    argv = ["--cores", "4", "--configfile", str(cfg_file), "--rerun-incomplete"]
    resolved = run_config(argv, cwd=ROOT)
    assert resolved["optimizer"]["lookahead"] == 0 and resolved["loss"]["kind"] == "weighted"  # defaults filled
    assert run_dir_of(resolved, argv, cwd=ROOT) == tmp_path / "out" / "tiny"
    argv2 = [*argv, "--config", "run_name=other"]
    assert run_dir_of(run_config(argv2, cwd=ROOT), argv2, cwd=ROOT) == tmp_path / "out" / "other"
    assert parallel_fits(resolved, argv) == 4  # tiny.yaml: 1 thread per fit
    # without --configfile: the default search in config/config.yaml
    default = run_config(["--cores", "2"], cwd=ROOT)
    name = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["run_name"]
    assert run_dir_of(default, [], cwd=ROOT) == ROOT / "results" / name
    # a config that does not resolve still names its run folder (the workflow says what is wrong)
    cfg["optimizer"]["batchsize"] = 3
    cfg_file.write_text(yaml.safe_dump(cfg))
    assert run_dir_of(run_config(argv, cwd=ROOT), argv, cwd=ROOT) == tmp_path / "out" / "tiny"


def test_tail_reads_this_invocation_only(tmp_path):
    log = tmp_path / "snakemake.log"
    log.write_text("old 1\nold 2\n")
    offset = log.stat().st_size
    with open(log, "a") as fh:
        fh.write("".join(f"new {i}\n" for i in range(40)))
    lines = tail(log, 30, offset)
    assert lines[0] == "new 10" and lines[-1] == "new 39" and len(lines) == 30
    assert tail(log, 50, offset)[0] == "new 0"


def _potune_run(tmp_path: Path, cfg: dict, *extra: str) -> subprocess.CompletedProcess:
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "workflow"), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [
            "timeout",
            "-k",
            "10",
            "600",
            sys.executable,
            "-m",
            "potune.run",
            "--cores",
            "2",
            "--configfile",
            str(cfg_file),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )


def _tiny(tmp_path: Path) -> dict:
    cfg = yaml.safe_load((ROOT / "tests" / "configs" / "tiny.yaml").read_text())
    for k in ("train", "test"):
        cfg["data"][k] = str(ROOT / cfg["data"][k])
    cfg["results_dir"] = str(tmp_path / "results")
    return cfg


@pytest.mark.slow
def test_potune_run_is_quiet_and_logs_snakemake(tmp_path):
    cfg = _tiny(tmp_path)
    proc = _potune_run(tmp_path, cfg, "--rerun-incomplete")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    lines = out.splitlines()
    assert 8 <= len(lines) < 40, out
    run_dir = tmp_path / "results" / "tiny"
    table = pd.read_csv(run_dir / "trials.csv")
    best = table.loc[table["loss"].idxmin()]
    assert "trials 4/4" in out
    assert f"best loss {best['loss']:.5g} (trial {best['trial_id']})" in out
    assert sum(bool(re.search(r"\] trial \d-\d\d: loss", ln)) for ln in lines) == 4
    assert "test set: E " in out and "refit of the best" in out
    assert "rule " not in out and "Finished job" not in out  # Snakemake's output is not on the console
    log = (run_dir / "logs" / "snakemake.log").read_text()
    assert "=== potune.run" in log and "Finished job" in log and "[potune] iteration 1 done" in log
    assert f"Snakemake log: {run_dir / 'logs' / 'snakemake.log'}" in out
    # the tiny fits (15 sparse points) leave force errors over half of a zero-force model's:
    # summary.md and the progress output say the best is poor (#16 item 2)
    summary = (run_dir / "summary.md").read_text()
    assert "**Warning: the best trial" in summary and "zero forces" in summary
    assert f"] Warning: the best trial {best['trial_id']} is a poor potential" in out


@pytest.mark.slow
def test_potune_run_failure_shows_the_error(tmp_path):
    cfg = _tiny(tmp_path)
    cfg["optimizer"]["batchsize"] = 2
    proc = _potune_run(tmp_path, cfg)
    assert proc.returncode == 1, proc.stdout
    assert "unknown config key 'optimizer.batchsize'; did you mean 'optimizer.batch_size'?" in proc.stdout
    log = tmp_path / "results" / "tiny" / "logs" / "snakemake.log"
    assert f"full log: {log}" in proc.stdout and "unknown config key" in log.read_text()
    assert len(proc.stdout.splitlines()) < 40


@pytest.mark.slow
def test_potune_run_ctrl_c_stops_snakemake(tmp_path):
    """SIGINT to python -m potune.run reaches Snakemake (in its own process group), which
    stops; the command says so and exits non-zero."""
    import signal
    import time

    cfg = _tiny(tmp_path)
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "workflow"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "potune.run", "--cores", "1", "--configfile", str(cfg_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    meta = tmp_path / "results" / "tiny" / "iter0" / "proposals" / "meta.yaml"
    deadline = time.time() + 300
    while not meta.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert meta.exists() and proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, out
    assert "stopped on request (Snakemake exit" in out and "run the same command again to resume" in out
    assert not (tmp_path / "results" / "tiny" / "summary.md").exists()
    assert (
        "Terminating processes on user request"
        in (tmp_path / "results" / "tiny" / "logs" / "snakemake.log").read_text()
    )
