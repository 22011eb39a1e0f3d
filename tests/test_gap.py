"""Real gap_fit fits on the tiny Si set: command line, success, failures as results."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_TEST, TINY_TRAIN

from potune import data as D
from potune.evaluate.predict import evaluate
from potune.fitters import gap

SETTINGS = {"descriptor": "soap", "energy_only": False, "e0_method": "isolated", "sparse_jitter": 1e-8}
PARAMS = {
    "cutoff": 4.0,
    "n_max": 3,
    "l_max": 3,
    "zeta": 2,
    "n_sparse": 15,
    "sparse_method": "random",
    "delta": 1.0,
    "sigma_energy": 0.005,
    "sigma_force": 0.1,
}


def test_command_line_carries_every_hyperparameter(tmp_path):
    cmd = gap.build_command(PARAMS, SETTINGS, "train.xyz", "gap.xml", [14], seed=5, gap_fit="gap_fit")
    line = " ".join(cmd)
    for frag in (
        "soap cutoff=4.0",
        "n_max=3",
        "l_max=3",
        "n_sparse=15",
        "sparse_method=random",
        "zeta=2",
        "delta=1.0",
        "default_sigma={0.005 0.1 0.0 0.0}",
        "e0_method=isolated",
        "rnd_seed=5",
        "force_parameter_name=REF_forces",
        "energy_parameter_name=REF_energy",
    ):
        assert frag in line, frag
    eo = " ".join(gap.build_command(PARAMS, {**SETTINGS, "energy_only": True}, "t", "g", [14], gap_fit="g"))
    assert "force_parameter_name=NONE" in eo
    e0 = " ".join(gap.build_command({**PARAMS, "e0": -158.5}, SETTINGS, "t", "g", [14], gap_fit="g"))
    assert "e0=-158.5" in e0 and "e0_method" not in e0
    two = " ".join(gap.build_command(PARAMS, {**SETTINGS, "two_body": True}, "t", "g", [14], gap_fit="g"))
    assert "distance_2b cutoff=5.0" in two and " : soap" in two


def test_soap_turbo_command_per_species():
    cmd = " ".join(
        gap.build_command(
            {**PARAMS, "rcut_soft": 3.5}, {**SETTINGS, "descriptor": "soap_turbo"}, "t", "g", [6, 14], gap_fit="g"
        )
    )
    assert cmd.count("soap_turbo ") == 2
    # gap_fit parses soap_turbo arrays only in double braces (single ones fail with >= 2 species)
    assert "alpha_max={{3 3}}" in cmd and "species_Z={{6 14}}" in cmd
    assert "central_index=1" in cmd and "central_index=2" in cmd
    assert "rcut_hard=4.0" in cmd and "rcut_soft=3.5" in cmd


def test_real_fit_predicts_and_is_reproducible(tmp_path):
    species = D.species(D.read_structures(TINY_TRAIN))
    train = tmp_path / "train.xyz"
    D.write_structures(train, D.read_structures(TINY_TRAIN))
    res = gap.fit(PARAMS, SETTINGS, train, tmp_path / "m1", tmp_path / "fit1.log", species, seed=3)
    assert res.status == "ok", res.reason
    assert (tmp_path / "m1" / "gap.xml").exists()
    assert not (tmp_path / "m1" / "_work").exists()  # the per-fit copy of the training file is cleaned up
    metrics, _, preds = evaluate(gap.calculator(tmp_path / "m1"), D.read_structures(TINY_TEST), "weighted", 0.5)
    assert np.isfinite(metrics["loss"]) and metrics["energy_rmse_mev"] > 0
    assert set(metrics["per_config_type"]) == {"dia", "bt", "liq"}
    assert preds["force_pred"].shape == preds["force_ref"].shape
    # same seed -> same model predictions
    res2 = gap.fit(PARAMS, SETTINGS, train, tmp_path / "m2", tmp_path / "fit2.log", species, seed=3)
    assert res2.status == "ok"
    m2, _, _ = evaluate(gap.calculator(tmp_path / "m2"), D.read_structures(TINY_TEST), "weighted", 0.5)
    assert m2["loss"] == pytest.approx(metrics["loss"], rel=1e-8)


def test_gap_fit_crash_is_a_failed_result_with_its_message(tmp_path):
    train = tmp_path / "train.xyz"
    D.write_structures(train, D.read_structures(TINY_TRAIN))
    res = gap.fit({**PARAMS, "sparse_method": "bogus"}, SETTINGS, train, tmp_path / "m", tmp_path / "fit.log", [14])
    assert res.status == "failed"
    assert "exited with code" in res.reason and "unknown sparse method bogus" in res.reason
    assert not list((tmp_path / "m").glob("gap.xml*"))


def test_invalid_hyperparameter_is_a_failed_result(tmp_path):
    res = gap.fit({**PARAMS, "delta": -1.0}, SETTINGS, TINY_TRAIN, tmp_path / "m", tmp_path / "fit.log", [14])
    assert res.status == "failed" and "delta" in res.reason
