"""Per-species e0 (issue #17, several species): the arithmetic on data of varying composition,
the fallback on InP's near-1:1 compositions, gap_fit's per-species e0 argument, and the
parse-time checks (isolated atoms, species per fold, composition-aware energy scale)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from potune import data as D
from potune.config import resolve_config
from potune.data import e0 as E0
from potune.data.check import check_inputs
from potune.errors import DataError
from potune.fitters import gap

REPO = Path(__file__).resolve().parents[1]
INP = REPO / "data" / "InP" / "InP_small.xyz.gz"
#: reference energies added to the EMT labels, as a DFT code would have them (eV per atom)
SHIFT = {29: -1.5, 79: -3.25}


def _shifted(frames):
    """EMT energies (near 0 eV/atom for both metals) plus a different energy per species."""
    out = []
    for a in frames:
        b = a.copy()
        b.info[D.REF_E] = a.info[D.REF_E] + sum(SHIFT[int(z)] for z in a.numbers)
        b.arrays[D.REF_F] = a.arrays[D.REF_F]
        out.append(b)
    return out


def _isolated(symbol: str, energy: float) -> Atoms:
    a = Atoms(symbol, positions=[[0, 0, 0]], cell=[20, 20, 20], pbc=True)
    a.info[D.REF_E], a.info[D.CT] = energy, "isolated_atom"
    a.arrays[D.REF_F] = np.zeros((1, 3))
    return a


def test_least_squares_e0_per_species_on_varying_composition(binary_train):
    """Cu-Au (EMT, Au fraction 0.19-0.62): E = sum_s n_s e0_s is recovered exactly, and a
    per-species shift of the energies moves each species' e0 by its own shift; one averaged
    e0 (the same for Cu and Au) fails every one of these."""
    emt = D.read_normalised(binary_train)
    recs = E0.records(emt)
    x = E0.fractions(recs, [29, 79])[:, 1]
    assert x.max() - x.min() > 0.2  # composition varies
    # exact linear energies: recovered to rounding
    exact = [E0.Composition(r.numbers, sum(SHIFT[z] for z in r.numbers)) for r in recs]
    choice = E0.choose_e0(exact, "auto")
    assert choice.method == "least_squares" and choice.cond < E0.COND_MAX and choice.note is None
    assert choice.values == pytest.approx(SHIFT, abs=1e-9)
    avg = E0.average_e0(exact)
    assert abs(avg - SHIFT[29]) > 0.5 and abs(avg - SHIFT[79]) > 0.5
    # EMT energies (Au squeezed into the Cu lattice: about +1.9 eV per Au) and shifted ones
    base = E0.choose_e0(recs, "least_squares").values
    shifted = E0.choose_e0(E0.records(_shifted(emt)), "least_squares").values
    assert base[79] - base[29] > 1.0
    for z in SHIFT:
        assert shifted[z] - base[z] == pytest.approx(SHIFT[z], abs=1e-9)
    # the per-species e0 leaves far smaller energies to learn than the common one
    xs = E0.fractions(recs, [29, 79])
    per_atom = np.array([r.energy / len(r.numbers) for r in recs])
    left_ls = np.std(per_atom - xs @ [base[29], base[79]])
    left_avg = np.std(per_atom - E0.average_e0(recs))
    assert left_ls < 0.75 * left_avg


def test_isolated_atoms_first_under_auto(binary_train):
    frames = _shifted(D.read_normalised(binary_train)) + [_isolated("Cu", -0.25), _isolated("Au", -0.5)]
    choice = E0.choose_e0(E0.records(frames), "auto")
    assert choice.method == "isolated" and choice.values == {29: -0.25, 79: -0.5}
    ls = E0.choose_e0(E0.records(frames), "least_squares")
    assert ls.method == "least_squares" and ls.values[29] != ls.values[79]
    with pytest.raises(ValueError, match="no isolated atom of Au"):
        E0.choose_e0(E0.records(frames[:-1]), "isolated")


def test_one_species_keeps_the_average():
    frames = D.read_structures(REPO / "tests" / "data" / "si_tiny_train.xyz")
    choice = E0.choose_e0(E0.records(frames), "auto")
    assert choice.method == "average" and choice.values[14] == pytest.approx(E0.average_e0(E0.records(frames)))


def test_inp_is_ill_conditioned_and_falls_back():
    """Every InP structure is close to 1:1: least squares would split the energy between In
    and P by noise (it gives In -3.4, P -5.2 eV); potune uses one common e0 and says why."""
    frames = D.read_structures(INP)
    recs = E0.records(frames)
    values, cond = E0.least_squares_e0(recs, [15, 49])
    assert cond > E0.COND_MAX and abs(values[15] - values[49]) > 1.0
    for method in ("auto", "least_squares"):
        choice = E0.choose_e0(recs, method)
        assert choice.method == "average" and len(set(choice.values.values())) == 1
        assert "condition number" in choice.note and "P, In have no isolated atom" in choice.note
    # with an isolated atom of each species the fallback is the isolated atoms
    iso = E0.records([_isolated("In", -0.3), _isolated("P", -1.9)])
    choice = E0.choose_e0(recs + iso, "least_squares")
    assert choice.method == "isolated" and choice.values == {49: -0.3, 15: -1.9} and "condition number" in choice.note
    # exactly 1:1 everywhere: rank deficient
    one = [E0.Composition((49, 15), -9.0 - 0.1 * i) for i in range(4)]
    assert E0.least_squares_e0(one, [15, 49])[1] == float("inf")
    assert E0.choose_e0(one, "least_squares").method == "average"


def test_records_of_file_match_the_structures(binary_train, tmp_path):
    frames = D.read_normalised(binary_train) + [_isolated("Cu", -0.25)]
    path = tmp_path / "t.xyz"
    D.write_structures(path, frames)
    assert E0.records_of_file(path) == E0.records(frames)
    assert E0.records_of_file(path)[-1].isolated and not E0.records_of_file(path)[0].isolated
    bulk1 = Atoms("Cu", positions=[[0, 0, 0]], cell=[2.5, 2.5, 2.5], pbc=True)  # one atom, but bulk
    assert not E0.is_isolated(1, bulk1.cell, bulk1.pbc) and E0.is_isolated(1, np.zeros((3, 3)), [False] * 3)


def test_build_command_passes_per_species_e0():
    choice = E0.E0Choice("least_squares", {79: -3.25, 29: -1.5})
    cmd = gap.build_command({}, {"e0_method": "auto"}, "t", "g", [29, 79], gap_fit="g", e0=choice)
    assert "e0={Cu:-1.5:Au:-3.25}" in cmd and not any(c.startswith("e0_method") for c in cmd)
    avg = gap.build_command({}, {"e0_method": "auto"}, "t", "g", [14], gap_fit="g", e0=E0.E0Choice("average"))
    assert "e0_method=average" in avg
    assert "e0=-1.0" in gap.build_command({"e0": -1.0}, {"e0_method": "auto"}, "t", "g", [14], gap_fit="g", e0=choice)
    with pytest.raises(ValueError, match="needs the training set's e0"):
        gap.build_command({}, {"e0_method": "least_squares"}, "t", "g", [14], gap_fit="g")


def test_gap_fit_stores_the_least_squares_e0(binary_train, tmp_path):
    """A real gap_fit on Cu-Au with the default e0_method (auto): gap.xml holds the
    least-squares e0 of each species, and the fit log says which."""
    frames = _shifted(D.read_normalised(binary_train))
    train = tmp_path / "train.xyz"
    D.write_structures(train, frames)
    params = {"cutoff": 4.0, "n_max": 2, "l_max": 2, "n_sparse": 10, "sparse_method": "random"}
    res = gap.fit(params, {"e0_method": "auto"}, train, tmp_path / "m", tmp_path / "fit.log", [29, 79], seed=1)
    assert res.status == "ok", res.reason
    xml = (tmp_path / "m" / "gap.xml").read_text()
    stored = {int(z): float(v) for z, v in re.findall(r'<e0 Z="(\d+)" value="([^"]+)"', xml) if int(z) in SHIFT}
    want = E0.choose_e0(E0.records(frames), "least_squares").values
    assert stored == pytest.approx(want, abs=1e-9) and abs(stored[29] - stored[79]) > 0.5
    assert "# potune: e0 least_squares: Cu -" in (tmp_path / "fit.log").read_text()


# ----------------------------------------------------------------------------- parse-time checks
def _config(tmp_path, train, **over):
    raw = {
        "results_dir": str(tmp_path / "results"),
        "fitter": "gap",
        "data": {"train": str(train)},
        "split": {"method": "random", "fraction": 0.25, "seed": 1},
        "space": {"delta": {"type": "real", "low": 0.1, "high": 1.0}},
    }
    for k, v in over.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    return resolve_config(raw)


def _write(path, frames):
    out = []
    for a in frames:
        b = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc)
        b.info["config_type"] = a.info.get(D.CT, "default")
        b.calc = SinglePointCalculator(b, energy=a.info[D.REF_E], forces=a.arrays[D.REF_F])
        out.append(b)
    write(path, out, format="extxyz")
    return path


def test_isolated_needs_an_isolated_atom_of_every_species(binary_train, tmp_path):
    frames = _shifted(D.read_normalised(binary_train))
    path = _write(tmp_path / "cuau.xyz", frames + [_isolated("Cu", -0.25)])
    with pytest.raises(DataError, match=r"cuau.xyz: gap.e0_method isolated needs an isolated atom .*none of Au"):
        check_inputs(_config(tmp_path, path, gap={"e0_method": "isolated"}))
    two = _write(tmp_path / "two.xyz", frames + [_isolated("Cu", -0.25), _isolated("Au", -0.5), _isolated("Au", -0.5)])
    with pytest.raises(DataError, match="more than one isolated atom of Au"):
        check_inputs(_config(tmp_path, two, gap={"e0_method": "isolated"}))
    ok = _write(tmp_path / "ok.xyz", frames + [_isolated("Cu", -0.25), _isolated("Au", -0.5)])
    assert check_inputs(_config(tmp_path, ok, gap={"e0_method": "isolated"}))["train"] == 12
    # a fixed e0 needs no isolated atoms
    assert check_inputs(_config(tmp_path, path, gap={"e0_method": "isolated"}, fixed={"e0": -1.0}))["train"] == 11


def test_ill_conditioned_e0_warns_before_any_job(tmp_path):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        check_inputs(_config(tmp_path, INP, split={"method": "random", "fraction": 0.2, "seed": 0}))
    msgs = [str(x.message) for x in w]
    assert any("gap.e0_method auto" in m and "condition number" in m and "common e0" in m for m in msgs), msgs


def test_element_only_in_a_validation_fold_is_named(binary_train, tmp_path):
    """One Au-holding structure among Cu ones: k-fold puts it in one fold's validation set,
    whose training set then lacks Au."""
    frames = D.read_normalised(binary_train)
    cu = []
    for a in frames:
        b = a.copy()
        b.set_atomic_numbers([29] * len(b))
        b.info[D.REF_E], b.arrays[D.REF_F] = a.info[D.REF_E], a.arrays[D.REF_F]
        cu.append(b)
    path = _write(tmp_path / "mixed.xyz", cu[:9] + frames[9:])
    with pytest.raises(DataError) as exc:
        check_inputs(_config(tmp_path, path, split={"method": "kfold", "k": 3, "seed": 0}))
    msg = str(exc.value)
    assert "mixed.xyz: the validation set of fold" in msg and "element(s) Au (frame 9 (0-based))" in msg
    # a test structure with an element the training data lacks is named with its frame
    test = _write(tmp_path / "test.xyz", frames[:2])
    train = _write(tmp_path / "cu.xyz", cu)
    with pytest.raises(DataError, match=r"test.xyz: contains element\(s\) Au \(frames 0, 1 \(0-based\)\) absent from"):
        check_inputs(_config(tmp_path, train, data={"train": str(train), "test": str(test)}))


def test_energy_scale_warning_is_composition_aware():
    """Small Au-rich and large Cu-rich cells: totals that do not grow with the number of atoms
    but do grow with composition are not mistaken for energies per atom; energies per atom
    of cells of varied size and composition are still caught."""
    e_atom = {29: -3.0 / 7, 79: -3.0}  # 3 Au + 1 Cu = 15 Cu + 1 Au
    rng = np.random.default_rng(0)

    def cell(zs):
        a = Atoms(numbers=zs, positions=rng.random((len(zs), 3)) * 5, cell=[8, 8, 8], pbc=True)
        a.info[D.REF_E] = sum(e_atom[z] for z in zs) + 0.01 * rng.standard_normal()
        return a

    frames = [cell([29] + [79] * 3) if i % 2 else cell([79] + [29] * 15) for i in range(12)]
    e = np.array([a.info[D.REF_E] for a in frames])
    assert np.std(e) / abs(np.mean(e)) < 0.01  # totals hardly vary: the one-element rule would warn
    assert D.energy_scale_warning(frames, "alloy.xyz") is None
    varied = [cell(list(rng.choice([29, 79], size=int(rng.choice([4, 8, 16]))))) for _ in range(20)]
    assert D.energy_scale_warning(varied, "alloy.xyz") is None
    for a in varied:
        a.info[D.REF_E] /= len(a)
    assert "look like energies per atom" in D.energy_scale_warning(varied, "alloy.xyz")


def test_split_step_checks_species_per_fold(binary_train, tmp_path):
    """The split job checks each fold too (as before any job), should data change between."""
    from potune.steps.split import split

    frames = D.read_normalised(binary_train)
    cu = []
    for a in frames[:9]:
        b = a.copy()
        b.set_atomic_numbers([29] * len(b))
        b.info[D.REF_E], b.arrays[D.REF_F] = a.info[D.REF_E], a.arrays[D.REF_F]
        cu.append(b)
    path = _write(tmp_path / "mixed.xyz", cu + frames[9:])
    cfg = _config(tmp_path, path, split={"method": "kfold", "k": 3, "seed": 0})
    with pytest.raises(DataError, match=r"mixed.xyz: the validation set of fold \d: contains element\(s\) Au"):
        split({"data": cfg["data"], "split": cfg["split"]}, tmp_path / "split")
