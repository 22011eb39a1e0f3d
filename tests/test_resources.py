"""potune.cluster.resources and the GAP memory model (potune.fitters.gap): the GAP memory model, attempt scaling and the limits a fit sets itself."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from potune.cluster import resources as R
from potune.data import stats as S
from potune.fitters import gap as G
from potune.fitters.gap import resolve_params

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "si_tiny_train.xyz"
SETTINGS = {"descriptor": "soap", "energy_only": False}


def test_dataset_stats_of_tiny_si():
    st = S.dataset_stats(TINY)
    assert st.n_configs == 42 and st.n_atoms == sum(n for n, _ in st.configs) and st.n_species == 1
    rho = [r for _, r in st.configs if r is not None]
    assert min(rho) < 0.001  # the isolated atom in its 20 A box
    assert 0.04 < max(rho) < 0.1  # crystalline Si: 0.05 atoms/A^3
    assert st.neighbours(5.0) > st.neighbours(3.0) > 0


def test_neighbours_of_clusters_and_bulk():
    st = S.DatasetStats(2, 66, 1, ((2, None), (64, 0.05)))
    # dimer: each atom sees the other; bulk: rho * 4/3 pi r^3 each
    assert st.neighbours(5.0) == pytest.approx(2 * 1 + 64 * S.NEIGHBOUR_FACTOR * 0.05 * 4 / 3 * math.pi * 125)


def test_soap_dimension_matches_gap_fit():
    # gap_fit prints "x 51 6607" for n_max = l_max = 4, one species
    assert G.soap_dimension(4, 4, 1) == 51
    assert G.soap_dimension(8, 8, 1) == 325
    assert G.soap_dimension(4, 4, 2) == 8 * 9 // 2 * 5 + 1


def test_arrays_reproduce_gap_fit_estimate(tmp_path):
    """gap_fit's printed "Memory Estimate" for every 2nd structure of the Zuo 2020 Si train
    set (6607 atoms, 107 configs), SOAP n_max = l_max = 4, 200 sparse points, with forces:
    x 2.7 MB, xPrime 227 MB (556875 gradient rows), yY 31 MB, A 32 MB, PEAK 261 MB,
    Peak2 128 MB (measured peak RSS of that gap_fit: 312 MB)."""
    from potune import data as D

    frames = D.read_structures(
        ROOT / "data/zuo2020/Si_train.xyz.gz",
        require_forces=True,
        energy_key="energy",
        forces_key="forces",
        config_type_key="config_type",
    )
    half = tmp_path / "half.xyz"
    D.write_structures(half, frames[::2])
    st = S.dataset_stats(half)
    assert (st.n_atoms, st.n_configs) == (6607, 107)
    assert 3 * (st.n_atoms + st.neighbours(5.0)) == pytest.approx(556875, rel=0.03)
    p = resolve_params({"n_sparse": 200, "n_max": 4, "l_max": 4, "cutoff": 5.0})
    a = G.arrays_mb(p, SETTINGS, st)
    mib = 1e6 / 1024**2  # gap_fit's MB are 10^6 bytes
    assert a["peak"] == pytest.approx(261 * mib, rel=0.03)
    assert a["covariances"] == pytest.approx(128 * mib, rel=0.03)
    # conservative, not wasteful: measured peak RSS <= model <= 1.25 x measured
    assert 312 <= G.peak_mem_mb(p, SETTINGS, st) <= 1.25 * 312
    e = G.arrays_mb(p, {**SETTINGS, "energy_only": True}, st)
    assert e["descriptors"] < 5 and e["peak"] < 20  # x only (2.7 MB) and its CUR copies


def test_memory_grows_with_sparse_points_descriptor_and_data():
    base = {"n_sparse": 200, "n_max": 4, "l_max": 4, "cutoff": 5.0}
    st = S.DatasetStats(100, 6400, 1, ((64, 0.05),) * 100)
    big = S.DatasetStats(200, 12800, 1, ((64, 0.05),) * 200)
    m = G.peak_mem_mb(base, SETTINGS, st)
    assert G.peak_mem_mb({**base, "n_sparse": 2000}, SETTINGS, st) > m
    assert G.peak_mem_mb({**base, "n_max": 8, "l_max": 8}, SETTINGS, st) > 2 * m - G.GAP_BASE_MB
    assert G.peak_mem_mb({**base, "cutoff": 6.0}, SETTINGS, st) > m
    assert G.peak_mem_mb(base, SETTINGS, big) > m
    assert G.peak_mem_mb(base, {**SETTINGS, "energy_only": True}, st) < m


def test_fit_mem_request_scales_with_attempt_and_respects_cap():
    hp = {"n_sparse": 15, "n_max": 3, "l_max": 3, "cutoff": 4.0}
    auto = {"mem_mb": "auto", "mem_mb_max": None}
    m1 = R.fit_mem_mb(auto, "gap", hp, SETTINGS, TINY, attempt=1)
    assert m1 % 100 == 0 and m1 >= (G.GAP_BASE_MB + R.SCRIPT_MB) / R.MEM_LIMIT_FRACTION
    assert R.fit_mem_mb(auto, "gap", hp, SETTINGS, TINY, attempt=3) == 3 * m1
    assert R.fit_mem_mb({"mem_mb": "auto", "mem_mb_max": 300}, "gap", hp, SETTINGS, TINY) == 300
    assert R.fit_mem_mb({"mem_mb": 1234}, "gap", hp, SETTINGS, TINY, attempt=2) == 2468
    # a fitter without a memory model asks for the fallback
    assert R.fit_mem_mb(auto, "nomodel", hp, SETTINGS, TINY) == R.FALLBACK_MB


def test_job_mem_mb_reads_proposal_and_waits_for_files(tmp_path):
    prop = tmp_path / "t00.yaml"
    res = {"mem_mb": "auto", "mem_mb_max": None}
    # before the proposal exists (DAG building): a placeholder
    assert R.job_mem_mb(res, "gap", SETTINGS, prop, TINY) == R.FALLBACK_MB
    prop.write_text("point: {n_max: 3, l_max: 3, cutoff: 4.0}\nfixed: {n_sparse: 15}\n")
    small = R.job_mem_mb(res, "gap", SETTINGS, prop, TINY)
    prop.write_text("point: {n_max: 12, l_max: 12, cutoff: 6.0}\nfixed: {n_sparse: 4000}\n")
    assert R.job_mem_mb(res, "gap", SETTINGS, prop, TINY) > small
    assert R.job_mem_mb({"mem_mb": 500}, "gap", SETTINGS, None, None, attempt=2) == 1000


def test_runtime_and_self_limits():
    assert R.runtime_min({"runtime": 0.1}) == 1
    assert R.runtime_min({"runtime": 30}, attempt=2) == 60
    assert R.time_limit_s(120) == pytest.approx(120 * 60 * 0.95)
    assert R.time_limit_s(10) == pytest.approx(600 - 30)
    assert R.time_limit_s(0.1) == pytest.approx(3.0)
    assert R.mem_limit_mb(2000, 150) == pytest.approx(1900 - 150)
    assert R.mem_limit_mb(200, 500) == pytest.approx(20)
    assert R.current_rss_mb() > 10


def test_energy_only_large_descriptor_counts_cur_selection(tmp_path):
    """Measured: 13233 Si atoms, SOAP 8/8, 500 sparse points (cur_points), energy only:
    239 MB peak RSS, though gap_fit estimates 35 MB (benchmarks/gap_memory.py)."""
    from potune import data as D

    frames = D.read_structures(
        ROOT / "data/zuo2020/Si_train.xyz.gz",
        require_forces=True,
        energy_key="energy",
        forces_key="forces",
        config_type_key="config_type",
    )
    full = tmp_path / "full.xyz"
    D.write_structures(full, frames)
    st = S.dataset_stats(full)
    hp = {"n_sparse": 500, "n_max": 8, "l_max": 8, "cutoff": 5.0}
    peak = G.peak_mem_mb(hp, {**SETTINGS, "energy_only": True}, st)
    assert 239 <= peak <= 1.25 * 239
    assert G.peak_mem_mb({**hp, "sparse_method": "random"}, {**SETTINGS, "energy_only": True}, st) < 150


# ----------------------------------------------------------------------------- independent measurements
#: settings NOT among benchmarks/gap_memory.csv's, on which the model's constants were tuned
#: (other data sizes, SOAP sizes, sparse counts, cutoffs, sparse methods): name -> (every
#: k-th Zuo Si training structure, n_sparse, n_max, l_max, cutoff, sparse_method, forces,
#: the most model / measured may be)
INDEPENDENT = {
    # descriptor gradients dominate (3315 atoms, SOAP 5/3, 300 sparse points)
    "forces-descriptors": (4, 300, 5, 3, 4.5, "cur_points", True, 1.5),
    # covariances dominate (1650 atoms, SOAP 3/3, 1500 sparse points): the model takes
    # gap_fit's own estimate of these arrays, which gap_fit stays well below (0.6 of it in
    # the calibration, 0.45 here): safe, and wasteful by design (see GAP_ARRAY_FACTOR)
    "forces-covariances": (8, 1500, 3, 3, 4.0, "random", True, 2.5),
    # CUR selection on copies of x dominates (energies only, 6607 atoms, SOAP 6/6)
    "energies-cur": (2, 300, 6, 6, 5.0, "cur_points", False, 1.5),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(INDEPENDENT))
def test_memory_model_on_independent_settings(tmp_path, name):
    """The GAP memory model (peak_mem_mb) against real gap_fit runs whose peak RSS is
    sampled by potune.cluster.runner.run_limited, on settings the constants were not tuned
    on. Its contract: conservative (a first attempt with mem_mb auto is not killed: model >=
    measured) and not wasteful beyond the stated factor (1.5 where descriptors or the CUR
    selection dominate: the 60 MB base is counted whole even for small data; 2.5 where
    the covariances do). Measured 2026-12-02 (``PYTHONPATH=workflow .venv/bin/python
    tests/test_resources.py``), measured / model MB: forces-descriptors 157.7 / 205.3
    (1.30x, 21 s), forces-covariances 186.4 / 398.8 (2.14x, 22 s), energies-cur 79.2 /
    106.6 (1.34x, 12 s)."""
    *args, most = INDEPENDENT[name]
    rss, model, _ = measure_gap_fit(tmp_path, *args)
    assert rss <= model <= most * rss, f"{name}: measured {rss:.1f} MB, model {model:.1f} MB"


def measure_gap_fit(tmp_path: Path, every, n_sparse, n_max, l_max, cutoff, sparse_method, forces):
    """(measured peak RSS MB, potune's peak_mem_mb, wall s) of one real gap_fit."""
    import shutil

    from potune import data as D
    from potune.cluster.runner import run_limited

    frames = D.read_structures(
        ROOT / "data/zuo2020/Si_train.xyz.gz",
        require_forces=True,
        energy_key="energy",
        forces_key="forces",
        config_type_key="config_type",
    )
    work = tmp_path / f"gap_{every}_{n_sparse}_{n_max}_{l_max}"
    work.mkdir()
    train = work / "train.xyz"
    D.write_structures(train, frames[::every])
    settings = {"descriptor": "soap", "energy_only": not forces, "e0_method": "average"}
    hp = {
        "n_sparse": n_sparse,
        "n_max": n_max,
        "l_max": l_max,
        "cutoff": cutoff,
        "zeta": 4,
        "sparse_method": sparse_method,
    }
    model = G.peak_mem_mb(hp, settings, S.dataset_stats(train))
    cmd = G.build_command(hp, settings, train, work / "gap.xml", [14], seed=1)
    res = run_limited(cmd, work / "log", cwd=work, timeout_s=300)
    assert res.status == "ok", res.reason
    shutil.rmtree(work, ignore_errors=True)
    return res.peak_rss_mb, model, res.wall_s


if __name__ == "__main__":
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, (*args, _) in INDEPENDENT.items():
            if len(sys.argv) > 1 and name not in sys.argv[1:]:
                continue
            rss, model, wall = measure_gap_fit(Path(tmp), *args)
            print(
                f"{name}: measured {rss:.1f} MB, model {model:.1f} MB, model/measured {model / rss:.2f}, {wall:.1f} s",
                flush=True,
            )
