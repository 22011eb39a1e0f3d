"""Unit tests of data reading, splitting, metrics and losses (pure functions, no fits)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from conftest import TINY_TRAIN

from potune import data as D
from potune.errors import DataError
from potune.evaluate.metrics import Residuals, combine_folds, gamma_loss, weighted_loss


def _frames(n=10, cts=("a", "b"), forces_key="forces"):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        a = Atoms("Si2", positions=[[0, 0, 0], [1.2 + 0.1 * i, 0, 0]], cell=[10, 10, 10], pbc=True)
        a.info["config_type"] = cts[i % len(cts)]
        f = rng.normal(size=(2, 3))
        if forces_key == "forces":
            a.calc = SinglePointCalculator(a, energy=-10.0 - i, forces=f)
        else:
            a.info["dft_energy"] = -10.0 - i
            a.arrays[forces_key] = f
        out.append(a)
    return out


def test_read_shipped_tiny_data():
    frames = D.read_structures(TINY_TRAIN)
    assert len(frames) == 42
    assert all(D.REF_E in a.info and D.REF_F in a.arrays for a in frames)
    assert {a.info["config_type"] for a in frames} == {"dia", "bt", "liq", "isolated_atom"}


def test_read_custom_keys(tmp_path):
    p = tmp_path / "custom.xyz"
    write(p, _frames(4, forces_key="dft_force"), format="extxyz")
    frames = D.read_structures(p, energy_key="dft_energy", forces_key="dft_force")
    assert frames[2].info[D.REF_E] == -12.0
    assert frames[2].arrays[D.REF_F].shape == (2, 3)


def test_missing_forces_names_file_frame_and_key(tmp_path):
    p = tmp_path / "noforce.xyz"
    frames = _frames(3)
    frames[1].calc = SinglePointCalculator(frames[1], energy=-3.0)
    write(p, frames, format="extxyz")
    with pytest.raises(DataError, match=r"noforce.xyz: frame 1 .*no forces under key 'forces'"):
        D.read_structures(p)
    assert len(D.read_structures(p, require_forces=False)) == 3


def test_missing_energy_names_key(tmp_path):
    p = tmp_path / "x.xyz"
    write(p, _frames(2), format="extxyz")
    with pytest.raises(DataError, match=r"frame 0 .*no energy under key 'REF_E'"):
        D.read_structures(p, energy_key="REF_E")


def test_missing_file():
    with pytest.raises(DataError, match="not found"):
        D.read_structures("does/not/exist.xyz")


def test_random_split_per_config_type_is_seeded_and_disjoint():
    frames = D.read_structures(TINY_TRAIN)
    tr, va = D.random_split(frames, 0.25, seed=3)
    assert set(tr).isdisjoint(va) and sorted(tr + va) == list(range(len(frames)))
    assert (tr, va) == D.random_split(frames, 0.25, seed=3)
    assert (tr, va) != D.random_split(frames, 0.25, seed=4)
    cts_valid = {frames[i].info["config_type"] for i in va}
    assert {"dia", "bt"} <= cts_valid  # every config_type is represented
    iso = [i for i, a in enumerate(frames) if a.info["config_type"] == "isolated_atom"]
    assert set(iso) <= set(tr)  # isolated atoms are never validated on
    n_dia = sum(a.info["config_type"] == "dia" for a in frames)
    assert sum(frames[i].info["config_type"] == "dia" for i in va) == round(0.25 * n_dia)


def test_kfold_covers_every_structure_once():
    frames = D.read_structures(TINY_TRAIN)
    folds = D.kfold_split(frames, 4, seed=0)
    valid = [i for _, va in folds for i in va]
    assert len(valid) == len(set(valid))
    assert len(valid) == len(frames) - 1  # all but the isolated atom
    for tr, va in folds:
        assert set(tr).isdisjoint(va)
        assert len(va) >= 9


def test_species_check():
    si = _frames(2)
    c = [Atoms("C2", positions=[[0, 0, 0], [1.3, 0, 0]])]
    with pytest.raises(DataError, match="element.*C.*absent from the training data"):
        D.check_species(si, c, "test.xyz")


def test_weighted_loss_matches_formula():
    de = np.array([0.1, -0.2, 0.3])
    df = np.array([1.0, -1.0, 0.5, 0.5])
    alpha = 0.3
    expected = alpha * math.sqrt(np.mean(de**2)) + (1 - alpha) * math.sqrt(np.mean(df**2))
    assert weighted_loss(de, df, alpha) == pytest.approx(expected)
    assert weighted_loss(de, np.zeros(0), 1.0) == pytest.approx(math.sqrt(np.mean(de**2)))
    with pytest.raises(ValueError):
        weighted_loss(de, df, 1.5)


def test_gamma_loss():
    assert gamma_loss(3.0, 0.06) == pytest.approx(3.0 + 60.0 / 30.0)


def test_residuals_summary_and_loss():
    r = Residuals()
    r.add("a", 4, 0.04, np.full((4, 3), 0.1))  # 10 meV/atom
    r.add("b", 2, -0.06, np.full((2, 3), -0.2))  # -30 meV/atom
    s = r.summary()
    assert s["energy_rmse_mev"] == pytest.approx(math.sqrt((10**2 + 30**2) / 2))
    assert s["force_rmse"] == pytest.approx(math.sqrt((12 * 0.01 + 6 * 0.04) / 18))
    per = r.by_config_type()
    assert per["a"]["energy_rmse_mev"] == pytest.approx(10.0)
    assert per["b"]["force_rmse"] == pytest.approx(0.2)
    de_sqrt = np.array([0.04 / 2, -0.06 / math.sqrt(2)])
    assert r.loss("weighted", 0.5) == pytest.approx(0.5 * math.sqrt(np.mean(de_sqrt**2)) + 0.5 * s["force_rmse"])


def test_kfold_loss_is_mean_over_folds_not_last():
    folds = [{"loss": 1.0, "energy_rmse_mev": 2.0}, {"loss": 3.0, "energy_rmse_mev": 4.0}]
    assert combine_folds(folds) == {"loss": 2.0, "energy_rmse_mev": 3.0}


def test_pareto_front():
    from potune.report.plots import pareto_front

    cost = np.array([1.0, 2.0, 3.0, 1.5, 4.0])
    loss = np.array([5.0, 3.0, 1.0, 6.0, 2.0])
    assert list(pareto_front(cost, loss)) == [0, 1, 2]
