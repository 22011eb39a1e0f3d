"""Nested SNAP search (#16): an inner weight search inside each fit job, on the cached
descriptor blocks of the training and validation folds. Real FitSNAP and LAMMPS, a few Si
structures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from potune import data as D
from potune.config import resolve_config
from potune.errors import ConfigError
from potune.evaluate.predict import evaluate
from potune.fitters import snap
from potune.fitters.snap import nested

REPO = Path(__file__).resolve().parents[1]
SI_TRAIN = REPO / "tests" / "data" / "si_tiny_train.xyz"
BASE = {"twojmax": 4, "rcutfac": 4.5}
INNER_SPACE = {
    "eweight": {"type": "real", "low": 10.0, "high": 3000.0, "prior": "log-uniform"},
    "fweight": {"type": "real", "low": 0.1, "high": 10.0, "prior": "log-uniform"},
    "eweight[dia]": {"type": "real", "low": 1.0, "high": 1000.0, "prior": "log-uniform"},
}


@pytest.fixture(scope="module")
def si_folds(tmp_path_factory) -> tuple[Path, Path]:
    """Training (12 structures: isolated atom, liquid, dia, bt) and validation (8) files."""
    frames = D.read_structures(SI_TRAIN)
    cts = [a.info[D.CT] for a in frames]
    by = {c: [i for i, x in enumerate(cts) if x == c] for c in ("dia", "bt", "liq")}
    train = [cts.index("isolated_atom"), by["liq"][0], *by["dia"][:5], *by["bt"][:5]]
    valid = [*by["dia"][5:8], *by["bt"][5:8], *by["liq"][1:3]]
    d = tmp_path_factory.mktemp("si")
    D.write_structures(d / "train.xyz", [frames[i] for i in train])
    D.write_structures(d / "valid.xyz", [frames[i] for i in valid])
    return d / "train.xyz", d / "valid.xyz"


@pytest.fixture(scope="module")
def si_cache(si_folds, tmp_path_factory) -> Path:
    train, valid = si_folds
    out = tmp_path_factory.mktemp("cache") / "desc"
    meta = snap.compute_descriptors(snap.descriptor_spec(BASE, {}), train, out, out.parent / "d.log", valid_file=valid)
    assert meta["status"] == "ok", meta
    return out


def _inner(evaluations=12, space=INNER_SPACE, kind="weighted", alpha=0.5, kind_=None, **opt):
    if kind_:
        opt = {"kind": kind_, "batch_size": 2, "n_initial": 4, **opt}
    return {
        "space": space,
        **nested.INNER_DEFAULTS,
        "evaluations": evaluations,
        **opt,
        "loss": {"kind": kind, "alpha": alpha},
    }


def _lammps_metrics(model_dir, valid, kind="weighted", alpha=0.5) -> dict:
    metrics, _, _ = evaluate(snap.calculator(model_dir), D.read_normalised(valid), kind, alpha)
    return metrics


def test_cache_key_changes_with_twojmax():
    k = lambda p: snap.spec_key(snap.descriptor_spec(p, {}), "data")  # noqa: E731
    assert len({k({**BASE, "twojmax": j}) for j in (2, 4, 6, 8)}) == 4
    assert k({"twojmax": 6}) == k({"twojmax": 6.0})  # the same band limit written as a float


def test_validation_blocks_give_the_validate_loss(si_folds, si_cache, tmp_path):
    """The loss from the compressed validation blocks equals LAMMPS's validation loss of the
    same model (both losses, several weights): the R factor keeps the residual norm."""
    train, valid = si_folds
    check = snap.check_cache(si_cache, snap.descriptor_spec(BASE, {}), train, valid)
    assert check == ""
    assert "validation" in snap.check_cache(si_cache, snap.descriptor_spec(BASE, {}), train, train)
    vblocks = snap.load_valid_blocks(si_cache)
    assert {b["kind"] for b in vblocks} == {"energy", "energy_sqrtn", "force"}
    for i, w in enumerate([{"eweight": 100.0, "fweight": 1.0}, {"eweight": 5.0, "fweight[bt]": 20.0}]):
        d = tmp_path / f"m{i}"
        res = snap.fit({**BASE, **w}, {}, train, d, tmp_path / f"f{i}.log", [14], descriptors=si_cache)
        assert res.status == "ok", res.reason
        coef = np.array(snap.read_model(d)["coefficients"])
        for kind, alpha in (("weighted", 0.5), ("weighted", 0.9), ("gamma", 0.5)):
            ref = _lammps_metrics(d, valid, kind, alpha)
            got = nested.validation_errors(coef, vblocks, kind, alpha)
            for key in ("loss", "energy_rmse_mev", "force_rmse"):
                assert got[key] == pytest.approx(ref[key], rel=1e-6), (kind, alpha, key)


def test_pinned_weight_under_svd():
    groups = [("bt", "energy"), ("bt", "force"), ("dia", "energy"), ("dia", "force")]
    space, pinned = nested.pinned_space(INNER_SPACE, {"solver": "svd"}, groups)
    assert pinned == {"eweight": pytest.approx(np.sqrt(10.0 * 3000.0))}
    a0 = pinned["eweight"]
    assert space["fweight"]["low"] == pytest.approx(0.1 * a0 / 3000.0)
    assert space["fweight"]["high"] == pytest.approx(10.0 * a0 / 10.0)
    assert "eweight" not in space and "eweight[dia]" in space
    # ridge: the scale matters, nothing pinned; a fixed group weight sets the scale
    assert nested.pinned_space(INNER_SPACE, {"solver": "ridge"}, groups)[1] == {}
    only_dia = {k: v for k, v in INNER_SPACE.items() if k != "eweight"}
    assert nested.pinned_space(only_dia, {"solver": "svd"}, groups)[1] == {}


def test_scaling_every_weight_changes_nothing_under_svd(si_folds, si_cache):
    _, blocks = snap.load_blocks(si_cache)
    p = snap.resolve_params({**BASE, "eweight": 50.0, "fweight": 2.0, "eweight[dia]": 7.0})
    c1, _ = snap.solve(blocks, p)
    c2, _ = snap.solve(blocks, {**p, "eweight": 500.0, "fweight": 20.0, "eweight[dia]": 70.0})
    np.testing.assert_allclose(c1, c2, rtol=1e-6, atol=1e-9 * np.abs(c1).max())


def test_inner_search_is_deterministic_and_writes_the_best_model(si_folds, si_cache, tmp_path):
    """Two runs give the same inner table and model; the model is the best inner trial's,
    its LAMMPS validation loss is the inner loss, and any inner trial's loss is what a plain
    fit at its weights validates to."""
    train, valid = si_folds
    inner = _inner(evaluations=15)
    runs = []
    for name in ("a", "b"):
        d = tmp_path / name
        res = snap.fit(
            BASE,
            {},
            train,
            d,
            tmp_path / f"{name}.log",
            [14],
            seed=11,
            descriptors=si_cache,
            valid_file=valid,
            inner=inner,
        )
        assert res.status == "ok", res.reason
        runs.append((d, res.extra["inner"], pd.read_csv(d / "inner.csv")))
    (d, best, table), (d2, best2, table2) = runs
    pd.testing.assert_frame_equal(table.drop(columns="solve_s"), table2.drop(columns="solve_s"))
    assert best["params"] == best2["params"] and best["loss"] == best2["loss"]
    assert len(table) == 15 and (table["status"] == "ok").all()
    assert table["eweight"].nunique() == 1  # pinned (svd, every group's weight searched)
    assert best["loss"] == table["loss"].min() and best["evaluations"] == 15
    model = snap.read_model(d)
    assert model["inner"]["params"] == best["params"]
    for k, v in best["params"].items():  # the model was fitted with the best inner weights
        assert model["hyperparameters"][k] == pytest.approx(v)
    assert _lammps_metrics(d, valid)["loss"] == pytest.approx(best["loss"], rel=1e-6)
    # the same weights fitted plainly (no inner search) validate to the inner table's loss
    row = table.iloc[3]
    w = {k: float(row[k]) for k in INNER_SPACE}
    plain = tmp_path / "plain"
    res = snap.fit({**BASE, **w}, {}, train, plain, tmp_path / "p.log", [14], descriptors=si_cache)
    assert res.status == "ok" and not res.extra
    assert _lammps_metrics(plain, valid)["loss"] == pytest.approx(row["loss"], rel=1e-6)
    assert "inner search: 15 solves" in (tmp_path / "a.log").read_text()


@pytest.mark.parametrize("kind", ["bayes", "pso"])
def test_model_based_inner_searches_are_deterministic(si_cache, kind):
    _, blocks = snap.load_blocks(si_cache)
    vblocks = snap.load_valid_blocks(si_cache)
    inner = _inner(evaluations=8, kind_=kind)
    runs = [nested.inner_search(blocks, vblocks, BASE, inner, seed=5) for _ in range(2)]
    assert runs[0][0] == runs[1][0]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "solve_s"} for r in rows]  # noqa: E731
    assert strip(runs[0][1]) == strip(runs[1][1]) and len(runs[0][1]) == 8
    other = nested.inner_search(blocks, vblocks, BASE, inner, seed=6)
    assert strip(other[1]) != strip(runs[0][1])  # the seed matters


@pytest.mark.parametrize("kind", ["bayes", "pso"])
def test_model_based_inner_searches_take_warm_starts_as_priors(si_cache, kind):
    _, blocks = snap.load_blocks(si_cache)
    vblocks = snap.load_valid_blocks(si_cache)
    a0 = float(np.sqrt(10.0 * 3000.0))
    start = [{"eweight": a0, "fweight": 0.5, "eweight[dia]": 30.0}]
    inner = {**_inner(evaluations=5, kind_=kind), "start": start}
    runs = [nested.inner_search(blocks, vblocks, BASE, inner, seed=5) for _ in range(2)]
    rows = runs[0][1]
    assert len(rows) == 5 and [r["origin"] for r in rows] == ["warm", *[kind] * 4]
    assert (rows[0]["fweight"], rows[0]["eweight[dia]"]) == pytest.approx((0.5, 30.0))
    strip = lambda rs: [{k: v for k, v in r.items() if k != "solve_s"} for r in rs]  # noqa: E731
    assert strip(rows) == strip(runs[1][1])  # deterministic


def test_inner_search_computes_its_descriptors_without_a_cache(si_folds, si_cache, tmp_path):
    train, valid = si_folds
    inner = _inner(evaluations=6, kind="gamma")
    res = snap.fit(BASE, {}, train, tmp_path / "m", tmp_path / "f.log", [14], seed=3, valid_file=valid, inner=inner)
    assert res.status == "ok", res.reason
    assert snap.read_model(tmp_path / "m")["cache_hit"] is False
    cached = snap.fit(
        BASE,
        {},
        train,
        tmp_path / "c",
        tmp_path / "c.log",
        [14],
        seed=3,
        descriptors=si_cache,
        valid_file=valid,
        inner=inner,
    )
    assert cached.extra["inner"]["params"] == pytest.approx(res.extra["inner"]["params"], rel=1e-9)
    assert cached.extra["inner"]["loss"] == pytest.approx(res.extra["inner"]["loss"], rel=1e-6)


def _cfg(**over):
    raw = {
        "fitter": "snap",
        "data": {"train": str(SI_TRAIN)},
        "space": {"rcutfac": {"type": "real", "low": 3.0, "high": 5.0}, **INNER_SPACE},
        "results_dir": "/tmp/potune-snap-nested-cfg-test",
    }
    raw.update(over)
    return raw


def test_nested_is_the_default_with_weights_and_descriptors_in_the_space():
    cfg = resolve_config(_cfg(), check_files=False)
    assert cfg["snap"]["nested"] is True
    inner = nested.inner_config(cfg)
    assert set(inner["space"]) == set(INNER_SPACE) and inner["evaluations"] == 60
    assert inner["loss"] == {"kind": "weighted", "alpha": 0.5}
    from potune.steps.propose import search_space

    assert list(search_space({"space": cfg["space"], "inner": inner})) == ["rcutfac"]
    weights_only = resolve_config(_cfg(space=INNER_SPACE), check_files=False)
    assert weights_only["snap"]["nested"] is False
    off = resolve_config(_cfg(snap={"nested": False}), check_files=False)
    assert off["snap"]["nested"] is False and nested.inner_config(off) is None
    kfold = resolve_config(_cfg(split={"method": "kfold", "k": 3}), check_files=False)
    assert kfold["snap"]["nested"] is False


@pytest.mark.parametrize(
    "over, word",
    [
        ({"snap": {"nested": True}, "split": {"method": "kfold", "k": 3}}, "kfold"),
        ({"snap": {"nested": True}, "space": INNER_SPACE}, "no descriptor"),
        ({"snap": {"inner": {"evaluation": 3}}}, "snap.inner"),
    ],
)
def test_nested_config_errors(over, word):
    with pytest.raises(ConfigError, match=word):
        resolve_config(_cfg(**over), check_files=False)


def test_trial_row_carries_the_inner_best(tmp_path):
    from potune.io import write_json, write_yaml
    from potune.trials import trial_row

    prop = tmp_path / "t00.yaml"
    write_yaml(
        prop, {"iteration": 0, "trial": "t00", "trial_id": "0-00", "seed": 1, "point": {"rcutfac": 4.2}, "fixed": {}}
    )
    fold = tmp_path / "fold0"
    inner = {"params": {"eweight": 31.6, "fweight": 0.7}, "loss": 0.123, "evaluations": 60, "wall_s": 2.0, "table": "x"}
    write_json(fold / "fit.json", {"status": "ok", "reason": "", "wall_s": 3.0, "peak_rss_mb": 1.0, "inner": inner})
    m = {"loss": 0.123, "energy_rmse_mev": 1.0, "force_rmse": 0.1, "energy_mae_mev": 1.0, "force_mae": 0.1}
    write_json(fold / "valid.json", {"status": "ok", "reason": "", **m, "predict_ms_per_atom": 0.1})
    row = trial_row(prop, [fold])
    assert row["eweight"] == 31.6 and row["fweight"] == 0.7 and row["rcutfac"] == 4.2
    assert row["inner_loss"] == 0.123 and row["inner_evaluations"] == 60


def test_warm_start_points_come_first_rescaled_to_the_pinned_weight(si_cache):
    """snap.inner.warm_start: the told best weights are the first inner rows (marked warm),
    rescaled to the pinned weight (svd: the same ratios, the same loss) or clipped into the
    space; the rest is the cold search's Sobol design from its first point."""
    _, blocks = snap.load_blocks(si_cache)
    vblocks = snap.load_valid_blocks(si_cache)
    inner = _inner(evaluations=6)
    a0 = float(np.sqrt(10.0 * 3000.0))  # the pinned eweight
    inside = {"eweight": 2 * a0, "fweight": 2 * 0.5, "eweight[dia]": 2 * 30.0}  # ratios of a point in the box
    outside = {"eweight": a0, "fweight": 1e-6, "eweight[dia]": 30.0}  # fweight below the widened range
    best_cold, cold = nested.inner_search(blocks, vblocks, BASE, inner, seed=3)
    best, rows = nested.inner_search(blocks, vblocks, BASE, {**inner, "start": [inside, outside, inside]}, seed=3)
    assert len(rows) == 6 and [r["origin"] for r in rows] == ["warm", "warm", "sobol", "sobol", "sobol", "sobol"]
    assert rows[0]["eweight"] == pytest.approx(a0) and rows[0]["fweight"] == pytest.approx(0.5)
    assert rows[0]["eweight[dia]"] == pytest.approx(30.0)
    low = 0.1 * a0 / 3000.0  # the widened lower bound of fweight (pinned_space)
    assert rows[1]["fweight"] == pytest.approx(low) and rows[1]["eweight[dia]"] == pytest.approx(30.0)
    # the rescaled start point is the model of the unscaled weights (only ratios matter with svd)
    coef, _ = snap.solve(blocks, snap.resolve_params({**BASE, **inside}))
    assert rows[0]["loss"] == pytest.approx(nested.validation_errors(coef, vblocks, "weighted", 0.5)["loss"], rel=1e-6)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("solve_s", "origin", "inner_trial")} for r in rs]  # noqa: E731
    assert strip(rows[2:]) == strip(cold[:4])  # the Sobol design starts at its first point
    assert best["warm_start"] == 2 and best["best_origin"] == rows[best["index"]]["origin"]
    assert best["loss"] == min(r["loss"] for r in rows)
    # off (no start points, or warm_start false): today's search exactly, no origin column
    for off in ({**inner, "start": []}, {k: v for k, v in inner.items() if k != "warm_start"}):
        b, r = nested.inner_search(blocks, vblocks, BASE, off, seed=3)
        assert strip(r) == strip(cold) and b == best_cold and "origin" not in r[0] and "warm_start" not in b


def _told(rows):
    cols = ["iteration", "trial", "status", "loss", *INNER_SPACE]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows])


def test_warm_starts_are_the_best_told_trials():
    inner = {**_inner(), "warm_start": 2}
    table = _told(
        [
            (0, "t00", "ok", 0.30, 100.0, 1.0, 10.0),
            (0, "t01", "failed", float("nan"), 200.0, 2.0, 20.0),
            (1, "t00", "ok", 0.10, 300.0, 3.0, 30.0),
            (1, "t01", "ok", 0.20, 400.0, float("nan"), 40.0),  # a weight missing: skipped
            (2, "t00", "ok", 0.30, 500.0, 5.0, 50.0),  # ties 0-00: the earlier trial first
        ]
    )
    starts = nested.warm_starts(table, inner)
    assert starts == [
        {"eweight": 300.0, "fweight": 3.0, "eweight[dia]": 30.0},
        {"eweight": 100.0, "fweight": 1.0, "eweight[dia]": 10.0},
    ]
    assert nested.warm_starts(table.iloc[::-1], inner) == starts  # the rows' order (fits' ending order) is irrelevant
    assert nested.warm_starts(table, {**inner, "warm_start": 0}) == [] and nested.warm_starts(None, inner) == []


def test_proposal_records_warm_starts_whatever_the_completion_order(tmp_path):
    """The proposal's inner.start comes from the table the outer optimiser was told (with
    lookahead 1: the iterations before n - 1), so it is the same whatever order the fits
    ended in, and it is written into the proposal (a resumed search reads it back)."""
    from potune.io import read_yaml
    from potune.steps.propose import propose_step

    cfg = resolve_config(_cfg(snap={"inner": {"warm_start": 2, "evaluations": 6}}), check_files=False)
    inner = nested.inner_config(cfg)
    assert inner["warm_start"] == 2 and "start" not in inner
    search = {
        "space": cfg["space"],
        "fixed": {},
        "optimizer": {"kind": "bayes", "batch_size": 2, "seed": 1},
        "inner": inner,
    }
    rng = np.random.default_rng(0)
    rows = [
        (it, f"t{j:02d}", "ok", float(rng.uniform(0.1, 1.0)), *rng.uniform(1.0, 100.0, 3), float(rng.uniform(3, 5)))
        for it in range(3)
        for j in range(2)
    ]
    full = _told(rows)
    full["rcutfac"] = [r[-1] for r in rows]
    full["trial_id"] = [f"{r[0]}-{r[1][1:]}" for r in rows]
    starts = []
    for order in (range(6), [5, 2, 0, 4, 1, 3]):  # completion orders; iteration 2 still pending at 3
        told = full.iloc[list(order)]
        told = told[told["iteration"] <= 1]
        told.to_csv(tmp_path / "table.csv", index=False)
        out = tmp_path / f"p{len(starts)}"
        propose_step(search, 3, tmp_path / "table.csv", out)
        props = [read_yaml(out / f"t{j:02d}.yaml") for j in range(2)]
        assert props[0]["inner"]["start"] == props[1]["inner"]["start"]
        starts.append(props[0]["inner"]["start"])
    assert starts[0] == starts[1] and len(starts[0]) == 2
    best = full[full["iteration"] <= 1].sort_values("loss").head(2)
    assert [s["eweight"] for s in starts[0]] == pytest.approx(best["eweight"].tolist())
    # off: the proposals carry no warm_start and no start (as before the switch)
    assert nested.inner_config(resolve_config(_cfg(), check_files=False))["warm_start"] == 3  # the default
    off = nested.inner_config(resolve_config(_cfg(snap={"inner": {"warm_start": False}}), check_files=False))
    assert "warm_start" not in off
    propose_step({**search, "inner": off}, 3, tmp_path / "table.csv", tmp_path / "off")
    assert "start" not in read_yaml(tmp_path / "off" / "t00.yaml")["inner"]
    with pytest.raises(ConfigError, match="warm_start"):
        resolve_config(_cfg(snap={"inner": {"warm_start": -1}}), check_files=False)


def test_trial_row_says_whether_a_warm_start_won(tmp_path):
    from potune.io import write_json, write_yaml
    from potune.trials import trial_row

    prop = tmp_path / "t00.yaml"
    write_yaml(prop, {"iteration": 0, "trial": "t00", "trial_id": "0-00", "seed": 1, "point": {"rcutfac": 4.2}})
    fold = tmp_path / "fold0"
    inner = {"params": {"eweight": 3.0}, "loss": 0.1, "evaluations": 6, "wall_s": 1.0, "table": "x"}
    inner.update(warm_start=2, best_origin="warm")
    write_json(fold / "fit.json", {"status": "ok", "reason": "", "wall_s": 3.0, "peak_rss_mb": 1.0, "inner": inner})
    m = {"loss": 0.1, "energy_rmse_mev": 1.0, "force_rmse": 0.1, "energy_mae_mev": 1.0, "force_mae": 0.1}
    write_json(fold / "valid.json", {"status": "ok", "reason": "", **m, "predict_ms_per_atom": 0.1})
    row = trial_row(prop, [fold])
    assert row["inner_warm_start"] == 2 and row["inner_best_warm"] is True


@pytest.mark.slow
def test_snakemake_nested_snap_search_end_to_end(tmp_path):
    """2 iterations x 2 trials; the outer search proposes rcutfac only, each fit job tunes
    eweight and fweight[bt] (20 solves); validate reproduces the inner loss. Lookahead 0 and
    the default warm start: iteration 1's inner searches start at iteration 0's inner-best
    weights, carried by the proposals."""
    import yaml

    cfg = yaml.safe_load((REPO / "tests" / "configs" / "tiny-snap.yaml").read_text())
    cfg["snap"]["inner"] = {"evaluations": 20}
    cfg["optimizer"]["lookahead"] = 0
    cfg["results_dir"] = str(tmp_path)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(tmp_path / "cfg.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "tiny-snap"
    table = pd.read_csv(run / "trials.csv")
    assert len(table) == 4 and (table["status"] == "ok").all(), table[["status", "reason"]]
    np.testing.assert_allclose(table["inner_loss"], table["loss"], rtol=1e-6)
    assert (table["inner_evaluations"] == 20).all()
    for r in table.itertuples():
        prop = yaml_load(run / f"iter{r.iteration}" / "proposals" / f"{r.trial}.yaml")
        assert set(prop["point"]) == {"rcutfac"} and set(prop["inner"]["space"]) == {"eweight", "fweight[bt]"}
        fold = run / f"iter{r.iteration}" / r.trial / "fold0"
        model = snap.read_model(fold / "model")
        assert model["hyperparameters"]["eweight"] == pytest.approx(r.eweight)
        assert model["hyperparameters"]["fweight[bt]"] == pytest.approx(table.loc[r.Index, "fweight[bt]"])
        inner = pd.read_csv(fold / "model" / "inner.csv")
        assert len(inner) == 20
        # optimizer.default_first (the default): the fitter's default weights are the first inner row
        assert prop["inner"]["default"] == {"eweight": 100.0, "fweight[bt]": 1.0}
        assert inner["origin"].iloc[0] == "default"
        assert (inner["eweight"].iloc[0], inner["fweight[bt]"].iloc[0]) == pytest.approx((100.0, 1.0))
        assert r.inner_best_default == (inner["loss"].idxmin() == 0)
        if r.iteration == 0:  # nothing told yet: no warm start
            assert "start" not in prop["inner"] and inner["origin"].iloc[1] == "sobol"
            assert np.isnan(r.inner_warm_start)
        else:  # the two trials of iteration 0, best first, follow (one equal to the default is dropped)
            told = table[table["iteration"] == 0].sort_values("loss")
            assert [s["eweight"] for s in prop["inner"]["start"]] == pytest.approx(told["eweight"].tolist())
            warm = told[~np.isclose(told["eweight"], 100.0) | ~np.isclose(told["fweight[bt]"], 1.0)]
            k = len(warm)
            assert list(inner["origin"].iloc[1 : k + 2]) == ["warm"] * k + ["sobol"]
            assert r.inner_warm_start == k or (k == 0 and np.isnan(r.inner_warm_start))
            for (_, t), (_, w) in zip(warm.iterrows(), inner.iloc[1 : k + 1].iterrows()):
                assert (w["eweight"], w["fweight[bt]"]) == pytest.approx((t["eweight"], t["fweight[bt]"]))
        assert json.loads((fold / "fit.json").read_text())["inner"]["loss"] == pytest.approx(r.loss, rel=1e-6)
    best = yaml_load(run / "best" / "best.yaml")
    assert {"rcutfac", "eweight", "fweight[bt]"} <= set(best["hyperparameters"])
    assert (run / "best" / "potential" / "snap.snapcoeff").exists()
    assert not (run / "best" / "potential" / "inner.csv").exists()  # the refit is a plain fit


def yaml_load(path):
    import yaml

    return yaml.safe_load(Path(path).read_text())


# ----------------------------------------------------------------------------- snap.inner.folds
CV = {"folds": 3, "seed": 5, "always_train": ["isolated_atom"]}
TIMES = ("wall_s", "solve_s", "table")


@pytest.fixture(scope="module")
def si_cv_cache(si_folds, tmp_path_factory) -> Path:
    """The descriptor cache with 3-fold CV blocks of the training fold (liq has one training
    structure, so it is held out in one fold only)."""
    train, valid = si_folds
    out = tmp_path_factory.mktemp("cvcache") / "desc"
    meta = snap.compute_descriptors(
        snap.descriptor_spec(BASE, {}), train, out, out.parent / "d.log", valid_file=valid, cv=CV
    )
    assert meta["status"] == "ok", meta
    return out


def test_folds_1_leaves_the_proposals_and_cache_keys_as_before():
    """``snap.inner.folds: 1`` (the default) is the search without the setting: the same
    proposal ``inner``, the same descriptor cache key, and a run recorded before the key
    existed is the same search."""
    from potune.config import search_differences

    before = resolve_config(_cfg(), check_files=False)
    one = resolve_config(_cfg(snap={"inner": {"folds": 1}}), check_files=False)
    assert nested.inner_config(one) == nested.inner_config(before)
    assert "cv" not in nested.inner_config(one) and "folds" not in nested.inner_config(one)
    recorded = json.loads(json.dumps(before))
    del recorded["snap"]["inner"]["folds"]
    assert search_differences(recorded, one) == []
    three = resolve_config(_cfg(snap={"inner": {"folds": 3}}), check_files=False)
    assert nested.inner_config(three)["cv"] == {"folds": 3, "seed": 0, "always_train": ["isolated_atom"]}
    assert search_differences(recorded, three) == ["snap.inner.folds: 1 -> 3"]
    assert search_differences(before, one) == []


@pytest.mark.parametrize("folds", [0, -2, "3", True, 2.5])
def test_bad_folds_are_config_errors(folds):
    with pytest.raises(ConfigError, match=r"snap\.inner\.folds"):
        resolve_config(_cfg(snap={"inner": {"folds": folds}}), check_files=False)


def test_folds_need_a_nested_search():
    with pytest.raises(ConfigError, match=r"snap\.inner\.folds: .*nested"):
        resolve_config(_cfg(snap={"nested": False, "inner": {"folds": 3}}), check_files=False)


def test_more_folds_than_structures_is_a_config_error(si_folds, tmp_path):
    """The training fold has 11 structures to hold out (the isolated atom stays in)."""
    train, valid = si_folds
    with pytest.raises(ConfigError, match=r"snap\.inner\.folds: k-fold with k=12 needs at least 12"):
        snap.compute_descriptors(
            snap.descriptor_spec(BASE, {}), train, tmp_path / "c", tmp_path / "c.log", cv={**CV, "folds": 12}
        )


def test_cv_loss_is_the_brute_force_k_fold_loss(si_folds, si_cv_cache):
    """The CV loss from the cached blocks equals k explicit weighted least squares on the
    uncompressed rows outside each fold (numpy lstsq), evaluated on the fold's rows and pooled:
    catches a wrong compression or fold assignment."""
    from potune.data.split import kfold_split
    from potune.fitters.snap.descriptors import descriptor_rows, load_cv_blocks
    from potune.fitters.snap.params import group_weight, resolve_params

    train, _ = si_folds
    frames = D.read_normalised(train)
    rows = descriptor_rows(snap.descriptor_spec(BASE, {}), ["Si"], frames, si_cv_cache.parent)
    cts = np.array([frames[i].info[D.CT] for i in rows["frame"]])
    n_atoms = np.array([len(frames[i]) for i in rows["frame"]], dtype=float)
    folds = kfold_split(frames, CV["folds"], CV["seed"], CV["always_train"])
    cached = load_cv_blocks(si_cv_cache)
    assert len(cached) == 3
    for w in (
        {"eweight": 100.0, "fweight": 1.0, "eweight[dia]": 30.0},
        {"eweight": 5.0, "fweight": 3.0, "eweight[dia]": 900.0},
    ):
        p = resolve_params({**BASE, **w})
        weight = np.array([group_weight(p, "eweight" if k == 0 else "fweight", ct) for k, ct in zip(rows["kind"], cts)])
        sq = {"e": 0.0, "esq": 0.0, "f": 0.0}
        cnt = {"e": 0, "f": 0}
        for _, held in folds:
            out = np.isin(rows["frame"], held)
            coef = np.linalg.lstsq(weight[~out, None] * rows["A"][~out], weight[~out] * rows["b"][~out], rcond=1e-13)[0]
            r = rows["A"][out] @ coef - rows["b"][out]
            e = rows["kind"][out] == 0
            sq["e"] += float(r[e] @ r[e])
            sq["esq"] += float(((r * np.sqrt(n_atoms[out]))[e] ** 2).sum())
            sq["f"] += float(r[~e] @ r[~e])
            cnt["e"] += int(e.sum())
            cnt["f"] += int((~e).sum())
        ref_e, ref_esq, ref_f = (np.sqrt(sq[k] / cnt[c]) for k, c in (("e", "e"), ("esq", "e"), ("f", "f")))
        assert cnt["e"] == 11  # every training structure but the isolated atom held out once
        got = nested.cv_errors(cached, p, "weighted", 0.5, 1e-13)
        assert got["loss"] == pytest.approx(0.5 * ref_esq + 0.5 * ref_f, rel=1e-6)
        assert got["energy_rmse_mev"] == pytest.approx(1000 * ref_e, rel=1e-6)
        assert got["force_rmse"] == pytest.approx(ref_f, rel=1e-6)
        gamma = nested.cv_errors(cached, p, "gamma", 0.5, 1e-13)
        assert gamma["loss"] == pytest.approx(1000 * ref_e + 1000 * ref_f / 30, rel=1e-6)


def test_cv_inner_search_is_deterministic_and_records_its_folds(si_folds, si_cv_cache, si_cache, tmp_path):
    """With ``inner["cv"]`` the fit job scores the weights by the CV loss (not the validation
    fold's), twice the same; the model is fitted on the whole training file with the chosen
    weights and ``inner_folds`` reaches the trial table. A cache without the CV blocks is not
    used (the job computes its own)."""
    from potune.io import write_json, write_yaml
    from potune.trials import trial_row

    train, valid = si_folds
    inner = {**_inner(evaluations=8), "cv": CV}
    runs = []
    for name in ("a", "b"):
        d = tmp_path / name
        res = snap.fit(
            BASE,
            {},
            train,
            d,
            tmp_path / f"{name}.log",
            [14],
            seed=4,
            descriptors=si_cv_cache,
            valid_file=valid,
            inner=inner,
        )
        assert res.status == "ok", res.reason
        runs.append((res.extra["inner"], pd.read_csv(d / "inner.csv")))
    (best, table), (best2, table2) = runs
    pd.testing.assert_frame_equal(table.drop(columns="solve_s"), table2.drop(columns="solve_s"))
    assert best == {**best2, "wall_s": best["wall_s"], "solve_s": best["solve_s"], "table": best["table"]}
    assert best["folds"] == 3 and best["evaluations"] == 8
    cached = pd.Series(
        [
            nested.cv_errors(snap.load_cv_blocks(si_cv_cache), {**BASE, **r}, "weighted", 0.5, 1e-13)["loss"]
            for r in table[list(INNER_SPACE)].to_dict("records")
        ]
    )
    np.testing.assert_allclose(table["loss"], cached, rtol=1e-12)
    model = snap.read_model(tmp_path / "a")
    for k, v in best["params"].items():
        assert model["hyperparameters"][k] == pytest.approx(v)
    # the validation fold's loss of the chosen weights is not the inner (CV) loss
    assert _lammps_metrics(tmp_path / "a", valid)["loss"] != pytest.approx(best["loss"], rel=1e-3)
    assert (
        "inner search (3-fold CV on the training structures): 8 evaluations of 3 solves"
        in (tmp_path / "a.log").read_text()
    )
    # a cache without CV blocks is refused, whatever its validation blocks
    assert "cross-validation" in snap.check_cache(si_cache, snap.descriptor_spec(BASE, {}), train, valid, CV)
    res = snap.fit(
        BASE,
        {},
        train,
        tmp_path / "c",
        tmp_path / "c.log",
        [14],
        seed=4,
        descriptors=si_cache,
        valid_file=valid,
        inner=inner,
    )
    assert res.extra["inner"]["params"] == pytest.approx(best["params"], rel=1e-9)
    assert "not usable (no cross-validation blocks" in (tmp_path / "c.log").read_text()
    # the trial table says the inner loss is a 3-fold CV loss
    prop = tmp_path / "t00.yaml"
    write_yaml(prop, {"iteration": 0, "trial": "t00", "trial_id": "0-00", "seed": 4, "point": BASE, "fixed": {}})
    fold = tmp_path / "fold0"
    write_json(fold / "fit.json", {"status": "ok", "reason": "", "wall_s": 1.0, "peak_rss_mb": 1.0, **res.extra})
    m = {"loss": 0.2, "energy_rmse_mev": 1.0, "force_rmse": 0.1, "energy_mae_mev": 1.0, "force_mae": 0.1}
    write_json(fold / "valid.json", {"status": "ok", "reason": "", **m, "predict_ms_per_atom": 0.1})
    row = trial_row(prop, [fold])
    assert row["inner_folds"] == 3 and row["inner_loss"] == res.extra["inner"]["loss"]
    assert row["loss"] == 0.2 and "valid_loss" not in row
    # snap.outer_loss cv: the fit job marks its inner CV errors as the trial's, the validation fold's loss is kept
    res = snap.fit(
        BASE,
        {},
        train,
        tmp_path / "d",
        tmp_path / "d.log",
        [14],
        seed=4,
        descriptors=si_cv_cache,
        valid_file=valid,
        inner={**inner, "outer_loss": "cv"},
    )
    assert res.extra["inner"] == {**best, "outer_loss": "cv", **{k: res.extra["inner"][k] for k in TIMES}}
    write_json(fold / "fit.json", {"status": "ok", "reason": "", "wall_s": 1.0, "peak_rss_mb": 1.0, **res.extra})
    row = trial_row(prop, [fold])
    assert row["loss"] == res.extra["inner"]["loss"] and row["valid_loss"] == 0.2
    assert row["inner_force_rmse"] == res.extra["inner"]["force_rmse"] and row["force_rmse"] == 0.1


def _snakemake_search(cfg: dict, results: Path) -> Path:
    import yaml

    cfg = {**cfg, "results_dir": str(results)}
    results.mkdir(parents=True, exist_ok=True)
    (results / "cfg.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(results / "cfg.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return results / cfg["run_name"]


@pytest.mark.slow
def test_snakemake_nested_search_with_cv_inner_losses_end_to_end(tmp_path):
    """One iteration x 2 trials with ``snap.inner.folds: 2``: the descriptor caches hold the CV
    blocks, the trial table records ``inner_folds`` and a CV ``inner_loss`` (not the validate
    job's loss). The same search with ``snap.outer_loss: cv`` gives the same trials, each with
    the CV loss as its ``loss`` and the validate job's as ``valid_loss``, and its best trial and
    summary say so."""
    import yaml

    cfg = yaml.safe_load((REPO / "tests" / "configs" / "tiny-snap.yaml").read_text())
    cfg["snap"]["inner"] = {"evaluations": 6, "folds": 2}
    cfg["optimizer"]["lookahead"] = 0
    cfg["stop"]["max_iterations"] = 1
    tables = []
    for name in ("a", "b"):
        if name == "b":
            cfg["snap"]["outer_loss"] = "cv"
        run = _snakemake_search(cfg, tmp_path / name)
        table = pd.read_csv(run / "trials.csv")
        assert len(table) == 2 and (table["status"] == "ok").all(), table[["status", "reason"]]
        assert (table["inner_folds"] == 2).all() and (table["inner_evaluations"] == 6).all()
        if name == "b":  # ranked by CV: loss is the inner CV loss, the validate job's is kept
            np.testing.assert_allclose(table["loss"], table["inner_loss"], rtol=1e-12)
            np.testing.assert_allclose(table["valid_loss"], tables[0]["loss"], rtol=1e-9)
            best = yaml_load(run / "best" / "best.yaml")
            top = table.loc[table["loss"].idxmin()]
            assert best["trial_id"] == top["trial_id"] and best["loss"] == pytest.approx(top["inner_loss"])
            assert best["valid_loss"] == pytest.approx(top["valid_loss"])
            assert best["cv_force_rmse"] == pytest.approx(top["inner_force_rmse"])
            summary = (run / "summary.md").read_text()
            assert "ranked by the 2-fold cross-validation loss" in summary
            assert "were not used to choose this trial" in summary
            table = table.drop(columns=["valid_loss", "inner_energy_rmse_mev", "inner_force_rmse"])
            table["loss"] = tables[0]["loss"]
        else:
            assert "valid_loss" not in table.columns
        assert not np.allclose(table["inner_loss"], table["loss"], rtol=1e-3)
        for r in table.itertuples():
            prop = yaml_load(run / f"iter{r.iteration}" / "proposals" / f"{r.trial}.yaml")
            assert prop["inner"]["cv"] == {"folds": 2, "seed": 1, "always_train": ["isolated_atom"]}
            fit = json.loads((run / f"iter{r.iteration}" / r.trial / "fold0" / "fit.json").read_text())
            assert fit["inner"]["folds"] == 2 and fit["inner"]["loss"] == pytest.approx(r.inner_loss)
        caches = sorted((run / "descriptors" / "fold0").iterdir())
        assert caches and all((c / "cv_blocks.npz").exists() for c in caches)
        assert all(json.loads((c / "meta.json").read_text())["cv"]["folds"] == 2 for c in caches)
        timing = [c for c in table.columns if c.endswith(("_time_s", "_cpu_s", "_mem_mb", "ms_per_atom"))]
        tables.append(table.drop(columns=[*timing, "params_file", "fit_logs", "inner_table"]))
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_outer_loss_cv_needs_inner_cv_and_changes_only_what_it_says():
    """``snap.outer_loss``: ``validation`` (the default, and what a run recorded before the key
    means) leaves the proposals as before; ``cv`` marks them and needs ``snap.inner.folds`` > 1
    and a nested search; anything else is a config error naming the key."""
    from potune.config import search_differences

    before = resolve_config(_cfg(snap={"inner": {"folds": 3}}), check_files=False)
    assert before["snap"]["outer_loss"] == "validation" and "outer_loss" not in nested.inner_config(before)
    recorded = json.loads(json.dumps(before))
    del recorded["snap"]["outer_loss"]
    assert search_differences(recorded, before) == []
    cv = resolve_config(_cfg(snap={"inner": {"folds": 3}, "outer_loss": "cv"}), check_files=False)
    assert nested.inner_config(cv) == {**nested.inner_config(before), "outer_loss": "cv"}
    assert search_differences(recorded, cv) == ["snap.outer_loss: 'validation' -> 'cv'"]
    with pytest.raises(ConfigError, match=r"snap\.outer_loss: cv .* needs snap\.inner\.folds > 1"):
        resolve_config(_cfg(snap={"outer_loss": "cv"}), check_files=False)
    with pytest.raises(ConfigError, match=r"snap\.outer_loss: cv .* needs a nested search"):
        resolve_config(_cfg(snap={"outer_loss": "cv", "nested": False}), check_files=False)
    with pytest.raises(ConfigError, match=r"outer_loss"):
        resolve_config(_cfg(snap={"inner": {"folds": 3}, "outer_loss": "test"}), check_files=False)


def test_more_folds_than_training_structures_stop_before_any_job(tmp_path):
    """``check_inputs`` (run while Snakemake parses the workflow) deals the training fold of
    the split into the inner CV folds: too many is a config error naming the key."""
    from potune.data.check import check_inputs

    cfg = resolve_config(_cfg(results_dir=str(tmp_path), snap={"inner": {"folds": 3}}))
    check_inputs(cfg)
    n_train = len(D.split_folds(D.read_structures(SI_TRAIN), cfg["split"])[0][0])
    cfg = resolve_config(_cfg(results_dir=str(tmp_path), snap={"inner": {"folds": n_train + 1}}))
    with pytest.raises(ConfigError, match=rf"snap\.inner\.folds: k-fold with k={n_train + 1} needs"):
        check_inputs(cfg)


def test_inner_searches_start_at_the_fitters_default_weights(si_cache):
    """optimizer.default_first (the default): every proposal carries the fitter's default
    weights (eweight 100, fweight 1, per config_type too) and every inner search evaluates them
    first, rescaled to the pinned weight: the inner best is never worse than the default
    weights on the same descriptors; default_first false: the proposals and searches as before."""
    cfg = resolve_config(_cfg(snap={"inner": {"evaluations": 6}}), check_files=False)
    inner = nested.inner_config(cfg)
    assert inner["default"] == {"eweight": 100.0, "fweight": 1.0, "eweight[dia]": 100.0}
    off = nested.inner_config(resolve_config(_cfg(optimizer={"default_first": False}), check_files=False))
    assert "default" not in off
    _, blocks = snap.load_blocks(si_cache)
    vblocks = snap.load_valid_blocks(si_cache)
    base = _inner(evaluations=6)
    start = {"eweight": 500.0, "fweight": 2.0, "eweight[dia]": 50.0}
    best, rows = nested.inner_search(
        blocks, vblocks, BASE, {**base, "default": inner["default"], "start": [start]}, seed=3
    )
    assert [r["origin"] for r in rows] == ["default", "warm", "sobol", "sobol", "sobol", "sobol"]
    a0 = float(np.sqrt(10.0 * 3000.0))  # the pinned eweight: the default's ratios kept
    assert rows[0]["eweight"] == pytest.approx(a0) and rows[0]["eweight[dia]"] == pytest.approx(a0)
    assert rows[0]["fweight"] == pytest.approx(a0 / 100.0)
    coef, _ = snap.solve(blocks, snap.resolve_params({**BASE, "eweight": 100.0, "fweight": 1.0, "eweight[dia]": 100.0}))
    default_loss = nested.validation_errors(coef, vblocks, "weighted", 0.5)["loss"]
    assert rows[0]["loss"] == pytest.approx(default_loss, rel=1e-6)
    assert best["loss"] <= default_loss * (1 + 1e-9)
    assert best["default_start"] is True and best["warm_start"] == 1
    assert best["best_origin"] == rows[best["index"]]["origin"]
    # without the default: the warm start first, the same Sobol design after it
    b2, r2 = nested.inner_search(blocks, vblocks, BASE, {**base, "start": [start]}, seed=3)
    assert [r["origin"] for r in r2][:2] == ["warm", "sobol"] and "default_start" not in b2
    assert r2[0]["loss"] == pytest.approx(rows[1]["loss"], rel=1e-9)
