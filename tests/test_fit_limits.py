"""A fit that crashes, runs out of memory or out of time is a failed trial with the reason,
recorded by the fit itself (real gap_fit, limits enforced by potune.runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from potune import data as D
from potune.cluster.resources import MEM_LIMIT_FRACTION, current_rss_mb
from potune.fitters.gap import fit as gap_fit
from potune.steps.fit import fit_step

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "si_tiny_train.xyz"
SETTINGS = {"descriptor": "soap", "e0_method": "isolated"}
SMALL = {"n_sparse": 15, "sparse_method": "random", "n_max": 3, "l_max": 3, "cutoff": 4.0, "zeta": 2}


@pytest.fixture(scope="module")
def tiny_train(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "train.xyz"
    frames = D.read_structures(
        TINY, require_forces=True, energy_key="energy", forces_key="forces", config_type_key="config_type"
    )
    D.write_structures(out, frames)
    return out


def proposal(tmp_path: Path, point: dict, name: str = "t00.yaml") -> Path:
    p = tmp_path / name
    p.write_text(
        yaml.safe_dump({"iteration": 0, "trial": "t00", "trial_id": "0-00", "seed": 3, "point": point, "fixed": {}})
    )
    return p


def run_fit(tmp_path, train, point, settings=SETTINGS, **kw):
    d = tmp_path / "fold0"
    res = fit_step(proposal(tmp_path, point), train, d / "model", d / "fit.json", d / "fit.log", "gap", settings, **kw)
    assert json.loads((d / "fit.json").read_text()) == json.loads(json.dumps(res))
    return res, d


def test_ok_fit_records_limits(tmp_path, tiny_train):
    res, d = run_fit(tmp_path, tiny_train, SMALL, mem_mb=2000, runtime_min=5)
    assert res["status"] == "ok", res["reason"]
    assert (d / "model" / "gap.xml").exists()
    assert 10 < res["peak_rss_mb"] < 500
    assert res["time_limit_s"] == pytest.approx(270) and res["mem_limit_mb"] < 0.95 * 2000


def test_crash_is_failed_with_gap_fit_message(tmp_path, tiny_train):
    """gap_fit aborts on an energy sigma it cannot use: its message is the reason."""
    res, d = run_fit(tmp_path, tiny_train, {**SMALL, "sigma_energy": 1e-300}, mem_mb=2000, runtime_min=5)
    assert res["status"] == "failed"
    assert "too small energy_sigma" in res["reason"], res["reason"]
    assert not (d / "model" / "gap.xml").exists()


def test_over_memory_limit_is_out_of_memory(tmp_path, tiny_train):
    """A job granted less than gap_fit needs: the fit is stopped and says so."""
    mem_mb = (current_rss_mb() + 25) / MEM_LIMIT_FRACTION  # leaves gap_fit ~25 MB (it needs ~50)
    res, _ = run_fit(tmp_path, tiny_train, {**SMALL, "n_max": 8, "l_max": 8}, mem_mb=mem_mb, runtime_min=5)
    assert res["status"] == "failed"
    assert res["reason"].startswith("out of memory"), res["reason"]


def test_memory_limit_counts_resident_not_address_space(tmp_path, tiny_train):
    """gap_fit maps ~350 MB more address space than it uses: an RLIMIT_AS at the job's
    memory would fail this fit (resident ~50 MB) under a 150 MB limit; potune's does not."""
    work = tmp_path / "w"
    res = gap_fit(SMALL, SETTINGS, tiny_train, work / "model", work / "fit.log", [14], seed=1, mem_limit_mb=150)
    assert res.status == "ok", res.reason
    assert res.peak_rss_mb < 150


def test_over_time_limit_is_time_limit(tmp_path):
    """A job granted 3 s (runtime 0.1 min, less the margin) for a fit of ~15 s."""
    frames = D.read_structures(
        ROOT / "data/zuo2020/Si_train.xyz.gz",
        require_forces=True,
        energy_key="energy",
        forces_key="forces",
        config_type_key="config_type",
    )
    train = tmp_path / "si.xyz"
    D.write_structures(train, frames)
    point = {"n_sparse": 200, "n_max": 4, "l_max": 4, "cutoff": 5.0}
    # e0_method average: Zuo Si has no isolated atom
    res, _ = run_fit(
        tmp_path, train, point, settings={**SETTINGS, "e0_method": "average"}, mem_mb=4000, runtime_min=0.1
    )
    assert res["status"] == "failed"
    assert res["reason"] == "time limit of 3 s exceeded"
    assert res["wall_s"] < 10


def test_run_limited_stops_when_orphaned(tmp_path):
    """A local job whose Snakemake driver dies (kill -9) stops its program instead of
    writing into a run that will be resumed."""
    import subprocess
    import sys
    import time

    script = tmp_path / "child.py"
    marker = tmp_path / "done"
    script.write_text(
        "import sys\n"
        "from potune.cluster.runner import run_limited, Orphaned\n"
        "try:\n"
        f"    run_limited(['sleep', '30'], {str(tmp_path / 'log')!r})\n"
        f"    open({str(marker)!r}, 'w').write('finished')\n"
        "except Orphaned as exc:\n"
        f"    open({str(marker)!r}, 'w').write('orphaned')\n"
    )
    # an intermediate process plays the driver: it starts the child and is killed
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time; subprocess.Popen([sys.executable, {str(script)!r}]); time.sleep(60)",
        ]
    )
    time.sleep(3)
    driver.kill()
    driver.wait()
    for _ in range(100):
        if marker.exists():
            break
        time.sleep(0.1)
    assert marker.read_text() == "orphaned"
    out = subprocess.run(["pgrep", "-f", "sleep 30"], capture_output=True, text=True)
    # the sleep started for this test is gone (other sleeps on the machine are not ours)
    assert not any(
        ln
        for ln in out.stdout.split()
        if ln and Path(f"/proc/{ln}/cwd").exists() and str(tmp_path) in open(f"/proc/{ln}/cmdline").read()
    )


def test_last_attempt_records_killed_job(tmp_path, tiny_train):
    """Attempts 1 and 2 were killed from outside (no fit.json); the last attempt records
    the trial as failed without fitting again."""
    d = tmp_path / "fold0"
    d.mkdir()
    (d / "attempts.jsonl").write_text(
        json.dumps({"attempt": 1, "slurm_job_id": None, "pid": 11, "mem_mb": 500, "runtime_min": 1})
        + "\n"
        + json.dumps({"attempt": 2, "slurm_job_id": None, "pid": 12, "mem_mb": 1000, "runtime_min": 2})
        + "\n"
    )
    res = fit_step(
        proposal(tmp_path, SMALL),
        tiny_train,
        d / "model",
        d / "fit.json",
        d / "fit.log",
        "gap",
        SETTINGS,
        mem_mb=1500,
        runtime_min=3,
        attempt=3,
        max_attempts=3,
    )
    assert res["status"] == "failed"
    assert res["reason"].startswith("killed from outside on 2 attempt(s)")
    assert "pid 11, 500 MB" in res["reason"] and "pid 12, 1000 MB" in res["reason"]
    assert not (d / "model" / "gap.xml").exists()
