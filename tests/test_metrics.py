"""Error metrics and losses against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from potune.evaluate.metrics import Residuals, combine_folds, gamma_loss, mae, rmse, weighted_loss


def test_rmse_mae_by_hand():
    assert rmse([3.0, -4.0]) == pytest.approx(math.sqrt(12.5))
    assert mae([3.0, -4.0]) == pytest.approx(3.5)
    assert rmse(np.array([[1.0, 1.0], [1.0, 1.0]])) == pytest.approx(1.0)
    assert math.isnan(rmse([])) and math.isnan(mae([]))


def test_weighted_loss_is_xpot_eq8():
    de = np.array([0.2, -0.2])  # eV / sqrt(atom)
    df = np.array([0.1, -0.3, 0.0, 0.2])  # eV/A
    e, f = rmse(de), rmse(df)
    assert weighted_loss(de, df, 0.5) == pytest.approx(0.5 * e + 0.5 * f)
    assert weighted_loss(de, df, 1.0) == pytest.approx(e)
    assert weighted_loss(de, df, 0.0) == pytest.approx(f)
    # no forces in the validation set: fine when forces carry no weight, NaN otherwise
    assert weighted_loss(de, np.zeros(0), 1.0) == pytest.approx(e)
    assert math.isnan(weighted_loss(de, np.zeros(0), 0.5))
    for bad in (-0.01, 1.01, float("nan")):
        with pytest.raises(ValueError, match="alpha must be in"):
            weighted_loss(de, df, bad)


def test_gamma_loss_is_ppso():
    # Gamma_E in meV/atom plus Gamma_F in meV/A over 30
    assert gamma_loss(3.0, 0.09) == pytest.approx(3.0 + 90.0 / 30.0)


def test_residuals_summary_and_losses():
    r = Residuals()
    # structure 1: 2 atoms, energy off by +0.02 eV (10 meV/atom), forces off by 0.1 in one component
    r.add("bulk", 2, 0.02, np.array([[0.1, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    # structure 2: 4 atoms, energy off by -0.08 eV (-20 meV/atom), no force reference
    r.add("surface", 4, -0.08, None)
    s = r.summary()
    assert s["n_structures"] == 2 and s["n_atoms"] == 6
    assert s["energy_rmse_mev"] == pytest.approx(math.sqrt((10.0**2 + 20.0**2) / 2))
    assert s["energy_mae_mev"] == pytest.approx(15.0)
    assert s["force_rmse"] == pytest.approx(math.sqrt(0.01 / 6))
    assert s["force_mae"] == pytest.approx(0.1 / 6)
    de_sqrt = np.array([0.02 / math.sqrt(2), -0.08 / 2.0])
    assert r.loss("weighted", 0.3) == pytest.approx(0.3 * rmse(de_sqrt) + 0.7 * math.sqrt(0.01 / 6))
    assert r.loss("gamma") == pytest.approx(s["energy_rmse_mev"] + 1000.0 * s["force_rmse"] / 30.0)
    with pytest.raises(ValueError, match="unknown loss kind 'mse'"):
        r.loss("mse")
    by = r.by_config_type()
    assert set(by) == {"bulk", "surface"}
    assert by["bulk"]["energy_rmse_mev"] == pytest.approx(10.0)
    assert by["surface"]["energy_rmse_mev"] == pytest.approx(20.0)
    assert math.isnan(by["surface"]["force_rmse"])  # no force reference there
    arr = r.to_arrays()
    assert arr["n_atoms"].tolist() == [2, 4]


def test_empty_residuals_are_nan_not_errors():
    s = Residuals().summary()
    assert s["n_structures"] == 0 and math.isnan(s["energy_rmse_mev"]) and math.isnan(s["force_rmse"])


def test_combine_folds_means_numbers_only():
    folds = [
        {"loss": 1.0, "force_rmse": 0.2, "per_config_type": {}, "ok": True, "n_atoms": 10},
        {"loss": 3.0, "force_rmse": 0.4, "per_config_type": {}, "ok": True, "n_atoms": 20},
    ]
    out = combine_folds(folds)
    assert out == {"loss": 2.0, "force_rmse": pytest.approx(0.3), "n_atoms": 15.0}
