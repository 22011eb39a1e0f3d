"""Figures that do not mislead (#17): limits, log axes, legible grids, distinct colours."""

from __future__ import annotations

import numpy as np
import pandas as pd

from potune.report.plots import (
    _colour_map,
    dimer_limits,
    dimer_plot,
    important_dimensions,
    log_scale_wanted,
    parity_plot,
    reference_dimers,
)


def _curve(pair, well, depth, wall=30.0):
    r = np.linspace(1.0, 5.0, 50)
    e = wall * np.exp(-3 * (r - 1.0)) - depth * np.exp(-((r - well) ** 2))
    return pd.DataFrame({"pair": pair, "distance": r, "binding": e, "energy": e - 850.0, "source": "potential"})


def test_dimer_limits_show_every_curve_not_only_the_last():
    """Two pairs whose wells differ by 10x: the limits hold both wells and the tails (the old
    plot took them from the last pair only, and a 30 eV wall made the figure blank)."""
    curve = pd.concat([_curve("In-P", 2.4, 5.0), _curve("P-P", 2.2, 0.5)], ignore_index=True)
    lo, hi = dimer_limits(curve, pd.DataFrame(columns=["pair", "distance", "binding"]))
    assert lo < curve[curve.pair == "In-P"]["binding"].min() < curve[curve.pair == "P-P"]["binding"].min() < hi
    assert hi < 5.0  # not stretched to the 30 eV repulsive wall
    assert lo > -5.0 * 1.5


def test_dimer_energies_relative_to_isolated_atoms(tmp_path):
    from ase import Atoms

    from potune.data.read import REF_E

    atom = Atoms("C", positions=[[5, 5, 5]], cell=[10] * 3, pbc=False)
    atom.info[REF_E] = -150.0
    pair = Atoms("C2", positions=[[5, 5, 5], [6.3, 5, 5]], cell=[10] * 3, pbc=False)
    pair.info[REF_E] = -306.0
    ref = reference_dimers([atom, pair])
    assert ref["binding"].tolist() == [-6.0] and ref["relative_to"].tolist() == ["reference isolated atoms"]
    ref2 = reference_dimers([pair], atom_energies={6: -152.0})
    assert ref2["binding"].tolist() == [-2.0] and "potential" in ref2["relative_to"].iloc[0]
    d = dimer_plot(_curve("C-C", 1.3, 6.0), ref, tmp_path / "d.png", tmp_path / "d.csv")
    assert (tmp_path / "d.png").stat().st_size > 0 and "binding" in d.columns


def test_log_axes_where_the_prior_or_the_spread_calls_for_it():
    assert log_scale_wanted([0.01, 0.5, 1.0], log_prior=True)
    assert log_scale_wanted([0.001, 0.01, 0.1, 1.0])  # a loss spread over decades
    assert not log_scale_wanted([3.0, 4.0, 5.0])
    assert not log_scale_wanted([-1.0, 2.0, 50.0])  # not positive


def test_objective_plot_keeps_the_important_dimensions():
    rng = np.random.default_rng(0)
    names = [f"x{i}" for i in range(10)]
    ok = pd.DataFrame(rng.random((40, 10)), columns=names)
    ok["loss"] = 3 * ok["x7"] + 2 * ok["x2"] + 0.01 * rng.random(40)
    dims = important_dimensions(ok, names)
    assert len(dims) == 6 and "x7" in dims and "x2" in dims and dims == sorted(dims, key=names.index)
    assert important_dimensions(ok, names[:4]) == names[:4]


def test_colours_stay_distinct_past_ten_config_types(tmp_path):
    labels = [f"ct{i}" for i in range(25)]
    colours = _colour_map(labels)
    assert len({tuple(np.round(c, 6)) for c in colours.values()}) == 25
    # a parity plot with 12 config_types at -852 eV/atom draws (offset tick labels)
    n = 48
    preds = {
        "config_type": np.array([f"ct{i % 12}" for i in range(n)]),
        "energy_ref_per_atom": -852.0 + 0.01 * np.arange(n),
        "energy_pred_per_atom": -852.0 + 0.01 * np.arange(n) + 0.001,
        "force_config_type": np.array([f"ct{i % 12}" for i in range(3 * n)]),
        "force_ref": np.linspace(-1, 1, 3 * n),
        "force_pred": np.linspace(-1, 1, 3 * n) * 1.01,
    }
    e, f = parity_plot({"validation": preds}, tmp_path / "p.png", tmp_path / "e.csv", tmp_path / "f.csv")
    assert len(e) == n and len(f) == 3 * n and (tmp_path / "p.png").stat().st_size > 0
