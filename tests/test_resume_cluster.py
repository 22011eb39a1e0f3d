"""Resume after the driver is killed (kill -9), locally and on a live SLURM, and the same
search through `snakemake --profile slurm` as locally.

The SLURM test needs a cluster: one already up (sinfo answers), or ../shared/slurm beside
the repository and root to start it (CI: .ci/run starts it). Otherwise it is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from wfrun import ROOT, SNAKEMAKE, assert_same_trials, snakemake, tiny_config, trials

SHARED_SLURM = ROOT.parent / "shared" / "slurm"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny search run locally in one go: its trial table."""
    tmp = tmp_path_factory.mktemp("reference")
    cfg, run = tiny_config(tmp)
    snakemake(cfg, "--cores", "2", f"{run}/trials.csv")
    return trials(run)


def fit_files(run: Path) -> dict[str, tuple[int, int]]:
    """fit.json of every trial and fold: (mtime_ns, inode)."""
    return {
        str(p.relative_to(run)): (p.stat().st_mtime_ns, p.stat().st_ino) for p in run.glob("iter*/t*/fold*/fit.json")
    }


def attempts(run: Path) -> dict[str, int]:
    """How many times each trial-fold's fit was started (lines of attempts.jsonl)."""
    return {
        str(p.parent.relative_to(run)): len(p.read_text().splitlines())
        for p in run.glob("iter*/t*/fold*/attempts.jsonl")
    }


def start_driver(cfg: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*SNAKEMAKE, "--configfile", str(cfg), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )


def wait_until(cond, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    t0 = time.monotonic()
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"driver ended before {what}: {proc.stdout.read()[-4000:]}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timeout waiting for {what}")
        time.sleep(0.2)


def kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


@pytest.mark.slow
def test_kill_driver_then_resume_locally(tmp_path, reference):
    # 4 iterations (the reference has 2; the first two are the same trials): the search must
    # still be running when the second driver starts, however fast the machine
    cfg, run = tiny_config(tmp_path, stop={"max_iterations": 4})
    args = ("--cores", "2", f"{run}/trials.csv")
    drv = start_driver(cfg, *args)
    try:
        # mid-search: iteration 0 done, a fit of iteration 1 started
        wait_until(
            lambda: (run / "iter0" / "table.csv").exists() and any(run.glob("iter1/t*/fold0/attempts.jsonl")),
            400,
            drv,
            "iteration 1's fits",
        )
        # a second run into the same results directory is refused while the first runs
        second = snakemake(cfg, *args, check=False, timeout=120)
        assert second.returncode != 0
        # refused by potune's driver lock (any working directory), or by Snakemake's own
        out = second.stdout + second.stderr
        assert "another driver is running this search" in out or "cannot be locked" in out, out[-2000:]
        done_before = {k: v for k, v in fit_files(run).items() if k.startswith("iter0/")}
        started_before = attempts(run)
    finally:
        kill9(drv)
    assert len(done_before) == 2
    # the killed driver's fit processes stop on their own (they were its children)
    time.sleep(2)
    # resume: the README's recipe
    snakemake(cfg, "--unlock", timeout=120)
    snakemake(cfg, *args)
    t = trials(run)
    assert sorted(t["iteration"].unique()) == [0, 1, 2, 3]
    assert_same_trials(t[t["iteration"] < 2], reference)
    after = fit_files(run)
    for k, v in done_before.items():
        assert after[k] == v, f"{k} was fitted again"
    now = attempts(run)
    for k, n in now.items():
        if k.startswith("iter0/"):
            assert n == started_before[k] == 1, f"{k}: fitted again"


# ----------------------------------------------------------------------------- SLURM
def slurm_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture(scope="module")
def slurm_cluster():
    if slurm_up():
        yield
        return
    if not (SHARED_SLURM / "start-slurm.sh").exists():
        pytest.skip(f"no SLURM: sinfo does not answer and {SHARED_SLURM} (start-slurm.sh) is absent")
    if os.geteuid() != 0:
        pytest.skip("no SLURM: sinfo does not answer and starting the test cluster needs root")
    proc = subprocess.run(["timeout", "300", str(SHARED_SLURM / "start-slurm.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"start-slurm.sh failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    try:
        yield
    finally:
        subprocess.run(["timeout", "120", str(SHARED_SLURM / "stop-slurm.sh")], capture_output=True)


def squeue_ids() -> set[str]:
    out = subprocess.run(["squeue", "--me", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30)
    return set(out.stdout.split())


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_search_equals_local_and_survives_driver_kill(tmp_path, reference, slurm_cluster):
    """`snakemake --profile slurm`: every fit is its own SLURM job; the driver is killed
    (kill -9) while iteration 1's fits are on SLURM; the same command resumes it: no
    finished trial lost or refitted, no job submitted twice, the trial table is the local one."""
    cfg, run = tiny_config(tmp_path)
    args = (
        "--profile",
        "slurm",
        "--jobs",
        "2",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "1",
        f"{run}/trials.csv",
    )
    before_ids = squeue_ids()
    drv = start_driver(cfg, *args)
    try:
        # iteration 1's fits running as SLURM jobs (started: past Snakemake's bookkeeping of
        # the submission)
        wait_until(
            lambda: (
                (run / "iter0" / "table.csv").exists()
                and any(run.glob("iter1/t*/fold0/attempts.jsonl"))
                and bool(squeue_ids() - before_ids)
            ),
            480,
            drv,
            "iteration 1's SLURM jobs",
        )
        done_before = {k: v for k, v in fit_files(run).items() if k.startswith("iter0/")}
        on_slurm = squeue_ids() - before_ids
    finally:
        kill9(drv)
    assert len(done_before) == 2 and on_slurm
    snakemake(cfg, "--profile", "slurm", "--unlock", timeout=120)
    snakemake(cfg, *args, timeout=600)
    assert_same_trials(trials(run), reference)
    after = fit_files(run)
    for k, v in done_before.items():
        assert after[k] == v, f"{k} was fitted again"
    started = attempts(run)
    assert len(started) == 4 and all(n == 1 for n in started.values()), f"a fit ran twice: {started}"
    fits = [json.loads((run / k / "fit.json").read_text()) for k in started]
    assert all(f["status"] == "ok" for f in fits)
    # the fits ran as SLURM jobs
    jobs = [
        json.loads(line)["slurm_job_id"]
        for k in started
        for line in (run / k / "attempts.jsonl").read_text().splitlines()
    ]
    assert all(jobs), jobs
    # (the resumed driver waited for the killed one's jobs if they were still on SLURM:
    # "still queued or running" in its log; either way each fit ran once, checked above)


@pytest.mark.slow
@pytest.mark.parametrize(
    "ahead, batch, iterations, wait_for", [(1, 2, 3, 1), (3, 1, 6, 2)], ids=["lookahead1", "batch1-lookahead3"]
)
def test_kill_driver_mid_lookahead_then_resume(tmp_path, ahead, batch, iterations, wait_for):
    """optimizer.lookahead L: killed while iteration ``wait_for``'s fits run (possibly before
    iteration 0's table exists, with up to L iterations proposed ahead), the resumed search
    ends with exactly the trials of an uninterrupted one and fits nothing twice."""
    over = {"optimizer": {"lookahead": ahead, "batch_size": batch}, "stop": {"max_iterations": iterations}}
    (tmp_path / "ref").mkdir()
    ref_cfg, ref_run = tiny_config(tmp_path / "ref", "ref", **over)
    snakemake(ref_cfg, "--cores", "2", f"{ref_run}/trials.csv")  # the search only: its trial table
    reference = trials(ref_run)
    (tmp_path / "k").mkdir()
    cfg, run = tiny_config(tmp_path / "k", "k", **over)
    args = ("--cores", "2", f"{run}/trials.csv")
    drv = start_driver(cfg, *args)
    try:
        wait_until(
            lambda: any(run.glob(f"iter{wait_for}/t*/fold0/attempts.jsonl")), 400, drv, f"iteration {wait_for}'s fits"
        )
        done_before = fit_files(run)
    finally:
        kill9(drv)
    time.sleep(2)
    snakemake(cfg, "--unlock", timeout=120)
    snakemake(cfg, *args)
    assert_same_trials(trials(run), reference)
    after = fit_files(run)
    for k, v in done_before.items():
        assert after[k] == v, f"{k} was fitted again"
