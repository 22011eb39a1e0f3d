"""potune.cluster.snakemake_fixes on real Snakemake: a job retried while a checkpoint
finishes (tests/snakefiles/restart_after_checkpoint) is run, not lost; and a run that
loses a planned job does not end with exit status 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "tests" / "snakefiles" / "restart_after_checkpoint" / "Snakefile"


def run(tmp_path: Path, fix: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--cores", "2", "--keep-going"]
    cmd += ["--max-jobs-per-timespan", "2/5s", "--config", f"fix={fix}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)


def test_the_retry_runs_with_the_fix(tmp_path):
    proc = run(tmp_path, "all")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "retried.txt").exists() and (tmp_path / "after_checkpoint.txt").exists()
    assert "Trying to restart job" in proc.stderr


def test_a_lost_job_stops_the_run_loudly(tmp_path):
    """Without the fix the pinned Snakemake loses the retry (`retried.txt` never made);
    the check then stops the run with the jobs it lost, instead of exit status 0."""
    proc = run(tmp_path, "check")
    assert (tmp_path / "attempt1").exists() and not (tmp_path / "retried.txt").exists()
    assert proc.returncode != 0
    assert "Snakemake reported success but 2 planned job(s) never ran" in proc.stderr, proc.stderr[-3000:]
    assert "  - retried: retried.txt" in proc.stderr and "  - all\n" in proc.stderr
