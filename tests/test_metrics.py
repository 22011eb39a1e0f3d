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


# ----------------------------------------------------------------------------- paired comparison
def _residual_set(rng, scale_e: float, scale_f: float, n_structures: int = 20):
    """A residual set of n structures (4-12 atoms, the last one without forces)."""
    r = Residuals()
    for i in range(n_structures):
        n = int(rng.integers(4, 13))
        f = None if i == n_structures - 1 else rng.normal(0.0, scale_f, (n, 3))
        r.add("bulk" if i % 2 else "surf", n, float(rng.normal(0.0, scale_e)) * n, f)
    return r


def test_paired_bootstrap_agrees_with_the_metrics_and_resolves_a_real_difference():
    """The whole-set values are exactly Residuals.summary()/loss(); a potential compared with
    itself differs by 0 in every resample; one whose residuals are all halved is lower in
    every resample, with the interval below 0; one that differs only by noise is not."""
    from potune.evaluate.compare import paired_bootstrap, residuals_from_predictions

    rng = np.random.default_rng(3)
    a = _residual_set(rng, 0.004, 0.1)
    half = Residuals()
    for ct, n, de, df in zip(a.config_types, a.n_atoms, a.d_energy, a.d_forces):
        half.add(ct, n, de / 2, df / 2 if df.size else None)
    for kind, alpha in (("weighted", 0.75), ("gamma", 0.5)):
        same = paired_bootstrap(a, a, kind, alpha, samples=500)
        for key, r in same.items():
            assert r["diff"] == 0 and r["low"] == 0 and r["high"] == 0 and r["b_lower"] == 0, key
        res = paired_bootstrap(a, half, kind, alpha, samples=500)
        s, sh = a.summary(), half.summary()
        assert res["energy_rmse_mev"]["a"] == pytest.approx(s["energy_rmse_mev"], rel=1e-12)
        assert res["force_rmse"]["b"] == pytest.approx(sh["force_rmse"], rel=1e-12)
        assert res["loss"]["a"] == pytest.approx(a.loss(kind, alpha), rel=1e-12)
        assert res["loss"]["b"] == pytest.approx(half.loss(kind, alpha), rel=1e-12)
        for key, r in res.items():
            assert r["b_lower"] == 1.0 and r["high"] < 0 and r["low"] < r["diff"] < r["high"], key
    # another draw of the same error distribution: the interval straddles 0
    other = _residual_set(np.random.default_rng(4), 0.004, 0.1)
    other = Residuals(a.config_types, a.n_atoms, other.d_energy[:], other.d_forces[:])
    noise = paired_bootstrap(a, other, "weighted", 0.75, samples=2000)["energy_rmse_mev"]
    assert noise["low"] < 0 < noise["high"] and 0.02 < noise["b_lower"] < 0.98
    # the saved prediction arrays give back the same residuals
    has_f = [df.size > 0 for df in a.d_forces]
    preds = {
        "config_type": np.array(a.config_types),
        "energy_ref_per_atom": np.zeros(len(a.n_atoms)),
        "energy_pred_per_atom": np.array(a.d_energy) / np.array(a.n_atoms),
        "force_ref": np.zeros(sum(df.size for df in a.d_forces)),
        "force_pred": np.concatenate([df.ravel() for df in a.d_forces]),
    }
    back = residuals_from_predictions(preds, a.n_atoms, has_f)
    assert back.summary() == pytest.approx(a.summary(), rel=1e-12)
    with pytest.raises(ValueError, match="force components"):
        residuals_from_predictions(preds, a.n_atoms, [True] * len(has_f))
