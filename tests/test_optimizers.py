"""Optimisers behind one ask/tell interface (potune.optimizers) and the search loop's use
of them (potune.search): PSO equations, boundary handling, designs, replay, priors,
failures, stop rules."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from potune.errors import ConfigError
from potune.io import read_yaml
from potune.search.designs import DesignOptimizer
from potune.search.loop import failure_penalty, load_priors, propose, replay, should_stop, told_losses
from potune.search.optimizers import REGISTRY, make_optimizer
from potune.search.protocol import _same
from potune.search.pso import Box, PSOOptimizer
from potune.search.space import Space
from potune.steps.propose import propose_step
from potune.trials import read_table, write_table

KINDS = ["bayes", "pso", "sobol", "lhs", "random", "grid"]

REAL2 = Space.from_config(
    {"a": {"type": "real", "low": 0.0, "high": 10.0}, "b": {"type": "real", "low": -1.0, "high": 1.0}}
)
MIXED = Space.from_config(
    {
        "cutoff": {"type": "real", "low": 3.0, "high": 6.0},
        "delta": {"type": "real", "low": 0.01, "high": 1.0, "prior": "log-uniform"},
        "n_max": {"type": "integer", "low": 2, "high": 8},
        "method": {"type": "categorical", "values": ["cur_points", "random", "uniform"]},
    }
)


def quadratic(point: dict) -> float:
    """A cheap objective on MIXED (minimum near cutoff 4.5, delta 0.1, n_max 5, 'random')."""
    return (
        (point["cutoff"] - 4.5) ** 2
        + math.log10(point["delta"] / 0.1) ** 2
        + 0.1 * (point["n_max"] - 5) ** 2
        + (point["method"] != "random")
    )


def run_search(space: Space, cfg: dict, iterations: int, objective=quadratic, fail=()) -> pd.DataFrame:
    """The workflow's loop without the fits: propose (rebuild + replay) -> evaluate -> append.

    ``fail``: trial ids ("<iteration>-<k>") recorded as failed trials."""
    rows: list[dict] = []
    for it in range(iterations):
        table = pd.DataFrame(rows) if rows else None
        props, _ = propose(table, space, cfg, it)
        for p in props:
            failed = p.trial_id in fail
            rows.append(
                {
                    "iteration": it,
                    "trial": p.trial,
                    "trial_id": p.trial_id,
                    **p.point,
                    "status": "failed" if failed else "ok",
                    "reason": "boom" if failed else "",
                    "loss": math.nan if failed else objective(p.point),
                }
            )
    return pd.DataFrame(rows)


class FakeRNG:
    """Hands out fixed numbers in the order the optimiser asks for them."""

    def __init__(self, *arrays):
        self.arrays = [np.asarray(a, dtype=float) for a in arrays]

    def random(self, size=None):
        a = self.arrays.pop(0)
        if size is None:
            assert a.shape == (), f"expected a scalar draw, got {a.shape}"
            return float(a)
        assert a.shape == tuple(np.atleast_1d(size)), f"draw of shape {size} but the test prepared {a.shape}"
        return a.copy()


# ----------------------------------------------------------------------------- PSO equations
def test_pso_reproduces_eqs_14_to_16_by_hand():
    """2-D swarm of 2, C1 = 1, C2 = 2, dt = 0.5, w = 0; every R fixed by hand."""
    opt = PSOOptimizer(REAL2, seed=0, swarm_size=2, c1=1.0, c2=2.0, dt=0.5)
    rngs = {
        # eq. 14: x = x_min + R (x_max - x_min); a in [0, 10], b in [-1, 1]
        0: FakeRNG([[0.1, 0.5], [0.8, 0.25]]),
        # generation 1: R1, R2, then the redraw of particle 1 (it stands still: duplicate)
        1: FakeRNG([[0.5, 0.5], [0.2, 0.2]], [[0.25, 0.5], [0.3, 0.3]], [0.3, 0.75]),
        # generation 2: R1, R2, then the redraw of particle 0 (now the still one)
        2: FakeRNG([[0.7, 0.7], [0.4, 0.1]], [[0.9, 0.9], [0.2, 0.6]], [0.9, 0.05]),
    }
    opt._rng = lambda g: rngs[g]

    assert opt.ask(2) == [[1.0, 0.0], [8.0, -0.5]]
    np.testing.assert_array_equal(opt.v, 0.0)  # velocities start at 0

    opt.tell([[1.0, 0.0], [8.0, -0.5]], [3.0, 1.0])
    # bests: particle 0 at (1, 0) loss 3, particle 1 at (8, -0.5) loss 1 = global best.
    # particle 0: v = C1 R1 (p - x)/dt + C2 R2 (g - x)/dt = 0 + 2 * [0.25, 0.5] * [7, -0.5] / 0.5 = [7, -1]
    #             x = (1, 0) + [7, -1] * 0.5 = (4.5, -0.5)
    # particle 1: p = g = x -> v = 0 -> repeats (8, -0.5) -> redrawn by eq. 14: (3, 0.5), v = 0
    np.testing.assert_allclose(opt.v, [[7.0, -1.0], [0.0, 0.0]])
    assert opt.ask(2) == [[4.5, -0.5], [3.0, 0.5]]

    opt.tell([[4.5, -0.5], [3.0, 0.5]], [0.5, 2.0])
    # bests: particle 0 -> (4.5, -0.5) loss 0.5 = global best; particle 1 keeps (8, -0.5) loss 1.
    # particle 1: v = 1 * [0.4, 0.1] * ([8, -0.5] - [3, 0.5]) / 0.5 + 2 * [0.2, 0.6] * ([4.5, -0.5] - [3, 0.5]) / 0.5
    #               = [4, -0.2] + [1.2, -2.4] = [5.2, -2.6];  x = (3, 0.5) + 0.5 * v = (5.6, -0.8)
    # particle 0: stands still at the global best -> redrawn: (9, -0.9)
    np.testing.assert_allclose(opt.v, [[0.0, 0.0], [5.2, -2.6]])
    np.testing.assert_allclose(opt.ask(2), [[9.0, -0.9], [5.6, -0.8]])
    st = opt.state()
    assert st["generation"] == 2
    assert st["global_best"] == {"loss": 0.5, "point": {"a": 4.5, "b": -0.5}}
    assert st["particles"][1]["best_point"] == {"a": 8.0, "b": -0.5} and st["particles"][1]["best_loss"] == 1.0
    assert st["redrawn_duplicates"] == 2


def test_pso_inertia_keeps_part_of_the_velocity():
    opt = PSOOptimizer(REAL2, swarm_size=1, c1=1.0, c2=1.0, dt=2.0, inertia=0.5)
    opt.x = np.array([[5.0, 0.0]])
    opt.v = np.array([[1.0, 0.2]])
    opt.pbest_x, opt.pbest_loss = np.array([[6.0, 0.0]]), np.array([1.0])
    opt.gbest_x, opt.gbest_loss = np.array([4.0, 0.5]), 0.5
    opt._rng = lambda g: FakeRNG([[0.5, 0.5]], [[0.5, 1.0]])
    opt._move()
    # v = 0.5 [1, 0.2] + 1 [0.5, 0.5] [1, 0] / 2 + 1 [0.5, 1] [-1, 0.5] / 2 = [0.5, 0.35]
    np.testing.assert_allclose(opt.v, [[0.5, 0.35]])
    np.testing.assert_allclose(opt.x, [[6.0, 0.7]])  # x + v dt


@pytest.mark.parametrize(
    "boundary, x_new, v_new",
    [
        ("redraw", 3.0, 0.0),  # uniform redraw inside the box (R = 0.3), velocity 0
        ("clip", 10.0, 0.0),  # onto the wall, velocity 0
        ("reflect", 8.0, -3.0),  # 12 mirrored at 10, velocity reversed
    ],
)
def test_pso_out_of_box(boundary, x_new, v_new):
    space = Space.from_config({"a": {"type": "real", "low": 0.0, "high": 10.0}})
    opt = PSOOptimizer(space, swarm_size=1, c1=0.0, c2=0.0, inertia=1.0, boundary=boundary)
    opt.x, opt.v = np.array([[9.0]]), np.array([[3.0]])  # -> 12, outside [0, 10]
    opt._rng = lambda g: FakeRNG([[0.5]], [[0.5]], 0.3)
    opt._move()
    assert opt.x[0, 0] == pytest.approx(x_new)
    assert opt.v[0, 0] == pytest.approx(v_new)
    assert opt.n_out_of_box == 1


def test_pso_reflect_far_past_both_walls_and_below():
    space = Space.from_config({"a": {"type": "real", "low": 0.0, "high": 10.0}})
    opt = PSOOptimizer(space, swarm_size=2, c1=0.0, c2=0.0, inertia=1.0, boundary="reflect")
    opt.x, opt.v = np.array([[9.0], [1.0]]), np.array([[14.0], [-3.0]])  # -> 23 (folds to 3), -2 (-> 2)
    opt._rng = lambda g: FakeRNG([[0.5], [0.5]], [[0.5], [0.5]])
    opt._move()
    np.testing.assert_allclose(opt.x, [[3.0], [2.0]])


@pytest.mark.parametrize("boundary", ["redraw", "clip", "reflect"])
def test_pso_proposals_stay_in_the_box(boundary):
    cfg = {"kind": "pso", "batch_size": 6, "seed": 3, "pso": {"c1": 2.0, "c2": 4.0, "boundary": boundary}}
    table = run_search(MIXED, cfg, 6)
    assert all(MIXED.contains(r) for r in table.to_dict("records"))
    state = propose(table, MIXED, cfg, 6)[1]
    assert state["out_of_box_coordinates"] > 0  # the large C1, C2 did throw particles out


# ----------------------------------------------------------------------------- integer / categorical
def test_box_integer_and_categorical_coordinates():
    space = Space.from_config(
        {
            "n": {"type": "integer", "low": 2, "high": 4},
            "c": {"type": "categorical", "values": ["a", "b", "c"]},
            "k": {"type": "integer", "low": 1, "high": 100, "prior": "log-uniform"},
        }
    )
    box = Box(space)
    np.testing.assert_allclose(box.lo, [1.5, -0.5, math.log(0.5)])
    np.testing.assert_allclose(box.hi, [4.5, 2.5, math.log(100.5)])
    assert box.decode([1.5, -0.5, math.log(0.5)]) == [2, "a", 1]
    assert box.decode([2.5, 0.6, math.log(9.6)]) == [3, "b", 10]  # integers rounded, categorical index
    assert box.decode([4.5, 2.5, math.log(100.5)]) == [4, "c", 100]  # the upper walls stay in range
    assert box.decode(box.encode([3, "c", 42])) == [3, "c", 42]
    # uniform in the box gives every integer and every category the same chance
    pts = box.from_unit(np.random.default_rng(0).random((30000, 3)))
    for j, values in ((0, [2, 3, 4]), (1, ["a", "b", "c"])):
        freq = pd.Series([p[j] for p in pts]).value_counts(normalize=True)
        assert sorted(freq.index) == values
        assert np.allclose(freq.to_numpy(), 1 / 3, atol=0.015)


def test_pso_integer_and_categorical_points_are_valid_and_distinct():
    cfg = {"kind": "pso", "batch_size": 8, "seed": 1}
    table = run_search(MIXED, cfg, 5)
    assert table["n_max"].map(type).eq(int).all()
    assert set(table["method"]) <= {"cur_points", "random", "uniform"}
    assert not table.duplicated(MIXED.names).any()
    opt = make_optimizer(MIXED, cfg)
    replay(opt, table, MIXED)
    for p in opt.state()["particles"]:  # the readable state decodes the internal coordinates
        assert MIXED.contains(p["point"])
        assert p["point"] == dict(zip(MIXED.names, opt.box.decode(p["x"])))


# ----------------------------------------------------------------------------- every kind
@pytest.mark.parametrize("kind", KINDS)
def test_batch_proposals_are_distinct(kind):
    # a small discrete space (7 x 3 = 21 points) where repeats are likely
    space = Space.from_config(
        {"n": {"type": "integer", "low": 2, "high": 8}, "c": {"type": "categorical", "values": ["x", "y", "z"]}}
    )
    cfg = {"kind": kind, "batch_size": 4, "seed": 2, "n_initial": 4, "grid_points": 7}
    table = run_search(space, cfg, 3, objective=lambda p: (p["n"] - 5) ** 2 + (p["c"] == "x"))
    assert len(table) == 12
    assert not table.duplicated(space.names).any(), table


@pytest.mark.parametrize("kind", KINDS)
def test_replay_gives_identical_next_proposals(kind, tmp_path):
    cfg = {"kind": kind, "batch_size": 3, "seed": 11, "n_initial": 3}
    table = run_search(MIXED, cfg, 3, fail={"1-01"})
    props1, state1 = propose(table, MIXED, cfg, 3)
    write_table(tmp_path / "table.csv", table)  # what the next propose job reads
    props2, state2 = propose(read_table(tmp_path / "table.csv"), MIXED, cfg, 3)
    assert [p.point for p in props1] == [p.point for p in props2]
    assert [p.seed for p in props1] == [p.seed for p in props2]
    assert state1 == state2
    # same config + seed -> same search; another seed -> another search
    again = run_search(MIXED, cfg, 3, fail={"1-01"})
    pd.testing.assert_frame_equal(table, again)
    other = run_search(MIXED, {**cfg, "seed": 12}, 1)
    assert other[MIXED.names].values.tolist() != table[table.iteration == 0][MIXED.names].values.tolist()


def test_pso_replay_equals_a_live_swarm():
    """The swarm rebuilt from the table each iteration is the swarm that never stopped."""
    cfg = {"kind": "pso", "batch_size": 5, "seed": 4, "pso": {"inertia": 0.4, "boundary": "reflect"}}
    table = run_search(MIXED, cfg, 4, fail={"2-03"})
    live = make_optimizer(MIXED, cfg)
    losses = told_losses(table)
    for it in range(4):
        sel = (table["iteration"] == it).to_numpy()
        pts = live.ask(5)
        assert pts == [MIXED.to_point(r) for r in table[sel].to_dict("records")]
        live.tell(pts, losses[sel].tolist(), failed=(table[sel]["status"] != "ok").tolist())
    rebuilt = make_optimizer(MIXED, cfg)
    replay(rebuilt, table, MIXED)
    assert rebuilt.ask(5) == live.ask(5)
    assert rebuilt.state() == live.state()


def test_pso_follows_the_table_when_settings_changed():
    cfg = {"kind": "pso", "batch_size": 3, "seed": 4}
    table = run_search(REAL2, cfg, 2, objective=lambda p: p["a"] ** 2 + p["b"] ** 2)
    opt = make_optimizer(REAL2, {**cfg, "seed": 5})
    with pytest.warns(UserWarning, match="not where the swarm put them"):
        replay(opt, table, REAL2)
    assert opt.state()["global_best"]["loss"] == pytest.approx(table["loss"].min())
    with pytest.raises(ValueError, match="different optimizer.batch_size"):
        replay(make_optimizer(REAL2, {**cfg, "batch_size": 2}), table, REAL2)


def test_sobol_continues_one_sequence_and_lhs_batches_are_latin():
    sob = DesignOptimizer(REAL2, "sobol", seed=3)
    first8 = sob.ask(8)
    sob2 = DesignOptimizer(REAL2, "sobol", seed=3)
    sob2.tell(first8[:4], [1.0] * 4)
    assert sob2.ask(4) == first8[4:]
    lhs = DesignOptimizer(REAL2, "lhs", seed=3)
    lhs.tell(lhs.ask(5), [1.0] * 5)
    pts = np.array(lhs.ask(5))
    for j, (lo, hi) in enumerate(((0.0, 10.0), (-1.0, 1.0))):  # one point per fifth of each axis
        assert sorted(np.floor((pts[:, j] - lo) / (hi - lo) * 5).astype(int)) == [0, 1, 2, 3, 4]


def test_grid_covers_the_grid_then_stops(tmp_path):
    space_cfg = {
        "a": {"type": "real", "low": 1.0, "high": 100.0, "prior": "log-uniform"},
        "n": {"type": "integer", "low": 1, "high": 2},
    }
    space = Space.from_config(space_cfg)
    cfg = {"kind": "grid", "batch_size": 4, "seed": 0, "grid_points": 3}
    search = {"space": space_cfg, "fixed": {}, "optimizer": cfg}
    table = run_search(space, cfg, 3, objective=lambda p: p["a"])
    assert len(table) == 6  # 3 x 2 grid: 4 + 2 + 0
    assert sorted(table["a"].round(9).unique()) == [1.0, 10.0, 100.0]
    stop_cfg = {"max_iterations": 10}
    assert should_stop(table[table.iteration == 0], stop_cfg, 1, search=search) == (False, "")
    stop, reason = should_stop(table[table.iteration <= 1], stop_cfg, 2, search=search)
    assert stop and reason == "optimizer.kind grid: every point of the design has been evaluated"
    assert not should_stop(table, stop_cfg, 2, search={**search, "optimizer": {**cfg, "kind": "sobol"}})[0]
    # a grid already covered by the priors cannot start: a clear error, not an empty iteration
    write_table(tmp_path / "old.csv", table.assign(zeta=2))
    with pytest.raises(ValueError, match="no point left to propose"):
        propose_step({**search, "optimizer": {**cfg, "priors": str(tmp_path / "old.csv")}}, 0, None, tmp_path / "p")


# ----------------------------------------------------------------------------- bayes
def test_bayes_refuses_gbrt_and_unknown_choices():
    with pytest.raises(ConfigError, match="GBRT is broken with scikit-learn"):
        make_optimizer(REAL2, {"kind": "bayes", "base_estimator": "GBRT"})
    with pytest.raises(ConfigError, match="optimizer.acq_func"):
        make_optimizer(REAL2, {"kind": "bayes", "acq_func": "UCB"})
    with pytest.raises(ConfigError, match="unknown optimiser 'cma'"):
        make_optimizer(REAL2, {"kind": "cma"})
    with pytest.raises(ConfigError, match="optimizer.pso.boundary"):
        make_optimizer(REAL2, {"kind": "pso", "pso": {"boundary": "wrap"}})


@pytest.mark.parametrize(
    "estimator, acq, design, liar",
    [
        ("RF", "EI", "lhs", "cl_mean"),
        ("ET", "LCB", "halton", "cl_max"),
        ("GP", "PI", "hammersly", "cl_min"),
    ],
)
def test_bayes_estimators_and_acquisitions(estimator, acq, design, liar):
    cfg = {
        "kind": "bayes",
        "batch_size": 3,
        "seed": 1,
        "n_initial": 3,
        "base_estimator": estimator,
        "acq_func": acq,
        "initial_design": design,
        "liar": liar,
    }
    table = run_search(REAL2, cfg, 2, objective=lambda p: (p["a"] - 3) ** 2 + p["b"] ** 2)
    assert len(table) == 6 and not table.duplicated(REAL2.names).any()
    state = propose(table, REAL2, cfg, 2)[1]
    assert state["n_told"] == 6 and state["initial_points_left"] == 0
    assert state["best_loss"] == pytest.approx(table["loss"].min())


def test_gp_hedge_gains_evolve_across_iterations_through_propose(tmp_path):
    """The workflow rebuilds the optimiser every iteration; the gains must still learn (they
    were reset to zero at every iteration before: a uniform draw among EI, LCB, PI)."""
    cfg = {"kind": "bayes", "batch_size": 2, "seed": 3, "n_initial": 2, "acq_func": "gp_hedge", "liar": "cl_min"}
    objective = lambda p: (p["a"] - 3) ** 2 + 4 * p["b"] ** 2  # noqa: E731
    rows: list[dict] = []
    hedges = []
    for it in range(5):
        props, state = propose(pd.DataFrame(rows) if rows else None, REAL2, cfg, it)
        hedges.append(state.get("hedge"))
        for p in props:
            rows.append(
                {
                    "iteration": it,
                    "trial": p.trial,
                    "trial_id": p.trial_id,
                    **p.point,
                    "status": "ok",
                    "loss": objective(p.point),
                }
            )
    assert hedges[0] is None  # initial design: no model, no portfolio
    assert hedges[1]["iterations_counted"] == 0 and set(hedges[1]["gains"].values()) == {0.0}
    counted = [h["iterations_counted"] for h in hedges[1:]]
    assert counted == [0, 1, 2, 3]  # one more model iteration rewarded at each propose
    gains = [np.array(list(h["gains"].values())) for h in hedges[2:]]
    assert all(np.any(g != 0.0) for g in gains)
    assert not np.allclose(gains[0], gains[1]) and not np.allclose(gains[1], gains[2])
    assert np.ptp(gains[-1]) > 0 and max(hedges[-1]["probabilities"].values()) > 1 / 3 + 1e-3
    # the real propose job writes the gains beside the proposals, and they are reproducible
    table = pd.DataFrame(rows)
    write_table(tmp_path / "table.csv", table)
    search = {
        "space": {"a": {"type": "real", "low": 0.0, "high": 10.0}, "b": {"type": "real", "low": -1.0, "high": 1.0}},
        "fixed": {},
        "optimizer": cfg,
    }
    propose_step(search, 5, tmp_path / "table.csv", tmp_path / "p")
    written = read_yaml(tmp_path / "p" / "optimizer_state.yaml")["hedge"]
    again = propose(table, REAL2, cfg, 5)[1]["hedge"]
    assert written["gains"] == pytest.approx(again["gains"], rel=1e-12)
    assert written["iterations_counted"] == 4


@pytest.mark.parametrize("liar", ["kb", "lp"])
def test_kriging_believer_and_local_penalisation_batches(liar):
    cfg = {"kind": "bayes", "batch_size": 4, "seed": 5, "n_initial": 3, "liar": liar}
    table = run_search(MIXED, cfg, 3, fail={"1-02"})
    assert len(table) == 12 and not table.duplicated(MIXED.names).any()
    assert all(MIXED.contains(r) for r in table[MIXED.names].to_dict("records"))
    props1, state1 = propose(table, MIXED, cfg, 3)
    props2, state2 = propose(table, MIXED, cfg, 3)
    assert [p.point for p in props1] == [p.point for p in props2] and state1 == state2
    assert state1["liar"] == liar and len(state1["hedge"]["picked"]) == 4
    # the first point of the batch is the sequential choice (same fit, same pick)
    seq = propose(table, MIXED, {**cfg, "batch_size": 1}, 3)[0]
    assert props1[0].point == seq[0].point
    # the batch spreads: kb/lp points are farther apart than a batch of identical lies would be
    pts = np.array([[p.point["cutoff"], np.log10(p.point["delta"])] for p in props1])
    assert np.min([np.linalg.norm(a - b) for i, a in enumerate(pts) for b in pts[i + 1 :]]) > 0
    with pytest.raises(ConfigError, match="needs base_estimator GP"):
        make_optimizer(MIXED, {**cfg, "base_estimator": "RF"})
    # liar unset (null in the defaults): kb with a GP, cl_min with a tree ensemble
    assert make_optimizer(MIXED, {"kind": "bayes"}).liar == "kb"
    assert make_optimizer(MIXED, {"kind": "bayes", "base_estimator": "RF"}).liar == "cl_min"


def test_batch_with_initial_points_left_mixes_design_and_model():
    """Priors used part of the design: the batch ends it, then the model fills the rest."""
    cfg = {"kind": "bayes", "batch_size": 4, "seed": 0, "n_initial": 4, "liar": "kb"}
    opt = make_optimizer(REAL2, cfg)
    opt.tell([[1.0, 0.5], [7.0, -0.5]], [3.0, 8.0], prior=True)
    pts = opt.ask(4)
    assert len(pts) == 4 and opt.state()["initial_points_left"] == 2
    assert not any(_same(p, q) for i, p in enumerate(pts) for q in pts[i + 1 :])


# ----------------------------------------------------------------------------- failures
def test_failure_penalty_rules():
    assert failure_penalty([1.0, 5.0, math.nan, math.inf]) == 5.0  # worst finite loss
    assert failure_penalty([math.nan]) == 1.0e3  # none finite yet
    assert failure_penalty([1.0, 5.0], configured=42.0) == 42.0
    table = pd.DataFrame({"status": ["ok", "failed", "ok"], "loss": [2.0, math.nan, 7.0]})
    np.testing.assert_array_equal(told_losses(table), [2.0, 7.0, 7.0])
    np.testing.assert_array_equal(told_losses(table, 100.0), [2.0, 100.0, 7.0])


@pytest.mark.parametrize("kind", KINDS)
def test_failed_trials_are_penalised_and_the_search_goes_on(kind):
    cfg = {"kind": kind, "batch_size": 3, "seed": 0, "n_initial": 3}
    every = {f"{i}-{k:02d}" for i in range(2) for k in range(3)}
    table = run_search(MIXED, cfg, 2, fail=every)  # nothing ever succeeds
    assert (table["status"] == "failed").all() and len(table) == 6
    props, state = propose(table, MIXED, cfg, 2)
    assert len(props) == 3
    assert not should_stop(table, {"max_iterations": 5}, 2)[0]
    if kind == "pso":
        assert state["global_best"] is None  # +inf for the bests, never a "best" failure
        assert all(p["best_loss"] is None for p in state["particles"])


def test_bayes_is_told_the_penalty_and_pso_infinity():
    cfg = {"kind": "bayes", "batch_size": 2, "seed": 0, "n_initial": 2, "failure_penalty": 50.0}
    table = run_search(REAL2, cfg, 2, objective=lambda p: p["a"], fail={"1-00"})
    for log_loss, told in ((False, 50.0), (True, math.log(50.0))):  # the default: the model fits log(loss)
        opt = make_optimizer(REAL2, {**cfg, "log_loss": log_loss})
        replay(opt, table, REAL2, penalty=50.0)
        opt.ask(2)
        assert sorted(opt.opt.yi)[-1] == pytest.approx(told) and len(opt.opt.yi) == 4
    pso = make_optimizer(REAL2, {"kind": "pso", "batch_size": 2, "seed": 0})
    pso.tell(pso.ask(2), [50.0, 3.0], failed=[True, False])
    assert pso.pbest_loss[0] == math.inf and pso.gbest_loss == 3.0


# ----------------------------------------------------------------------------- priors
def _prior_table(path: Path, n: int = 8, zeta=(2,) * 8) -> Path:
    rng = np.random.default_rng(5)
    box = Box(MIXED)
    rows = []
    for i, p in enumerate(box.from_unit(rng.random((n, len(MIXED))))):
        d = dict(zip(MIXED.names, p))
        rows.append(
            {
                "iteration": i // 4,
                "trial": f"t{i % 4:02d}",
                "trial_id": f"{i // 4}-{i % 4:02d}",
                **d,
                "zeta": zeta[i],
                "status": "ok",
                "reason": "",
                "loss": quadratic(d),
            }
        )
    rows[-1]["cutoff"] = 9.0  # outside today's space
    write_table(path, pd.DataFrame(rows))
    return path


def test_priors_skip_mismatched_fixed_rows_with_a_warning(tmp_path):
    path = _prior_table(tmp_path / "old.csv", zeta=(2, 2, 4, 2, 4, 2, 2, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        priors = load_priors(str(path), MIXED, {"zeta": 2})
    msgs = [str(w.message) for w in caught]
    assert any("skipped 2 row(s)" in m and "fixed hyperparameters differ" in m for m in msgs), msgs
    assert any("skipped 1 row(s)" in m and "outside the search space" in m for m in msgs), msgs
    assert len(priors) == 5


@pytest.mark.parametrize("kind", ["bayes", "pso", "sobol"])
def test_priors_are_told_before_the_first_ask(kind, tmp_path):
    path = _prior_table(tmp_path / "old.csv")
    cfg = {
        "space": {
            "cutoff": {"type": "real", "low": 3.0, "high": 6.0},
            "delta": {"type": "real", "low": 0.01, "high": 1.0, "prior": "log-uniform"},
            "n_max": {"type": "integer", "low": 2, "high": 8},
            "method": {"type": "categorical", "values": ["cur_points", "random", "uniform"]},
        },
        "fixed": {"zeta": 2},
        "optimizer": {"kind": kind, "batch_size": 4, "seed": 0, "n_initial": 4, "priors": str(path)},
        "stop": {"max_iterations": 3},
    }
    with pytest.warns(UserWarning, match="skipped 1 row"):
        propose_step(cfg, 0, None, tmp_path / "warm")
    state = read_yaml(tmp_path / "warm" / "optimizer_state.yaml")
    priors = read_table(path).iloc[:7]
    best = priors.loc[priors["loss"].idxmin()]
    if kind == "bayes":
        assert state["n_told"] == 7 and state["initial_points_left"] == 0  # priors used up the design
        assert state["best_loss"] == pytest.approx(best["loss"])
    elif kind == "pso":
        assert state["n_priors"] == 7
        assert state["global_best"]["loss"] == pytest.approx(best["loss"])
        assert state["global_best"]["point"]["cutoff"] == pytest.approx(best["cutoff"])
    else:
        assert state["n_priors"] == 7 and state["n_told"] == 0  # the design starts at its beginning
    cold = dict(cfg, optimizer={**cfg["optimizer"], "priors": None})
    propose_step(cold, 0, None, tmp_path / "cold")
    warm_pts = [read_yaml(p)["point"] for p in sorted((tmp_path / "warm").glob("t*.yaml"))]
    cold_pts = [read_yaml(p)["point"] for p in sorted((tmp_path / "cold").glob("t*.yaml"))]
    if kind == "bayes":
        assert warm_pts != cold_pts  # the surrogate, not the initial design, chose them
    else:
        assert warm_pts == cold_pts  # PSO's first generation and the design do not move


# ----------------------------------------------------------------------------- stop rules
def _table(best_by_iteration: list[float | None]) -> pd.DataFrame:
    rows = []
    for it, loss in enumerate(best_by_iteration):
        ok = loss is not None
        rows.append(
            {
                "iteration": it,
                "trial": "t00",
                "trial_id": f"{it}-00",
                "status": "ok" if ok else "failed",
                "loss": loss if ok else math.nan,
            }
        )
        rows.append({"iteration": it, "trial": "t01", "trial_id": f"{it}-01", "status": "ok", "loss": 99.0})
    return pd.DataFrame(rows)


def test_stop_max_iterations():
    assert should_stop(None, {"max_iterations": 3}, 2) == (False, "")
    stop, reason = should_stop(_table([1, 2, 3]), {"max_iterations": 3}, 3)
    assert stop and reason == "max_iterations (3) reached"


def test_stop_target_loss():
    assert not should_stop(_table([5.0, 4.0]), {"max_iterations": 9, "target_loss": 3.0}, 2)[0]
    stop, reason = should_stop(_table([5.0, 2.5]), {"max_iterations": 9, "target_loss": 3.0}, 2)
    assert stop and reason.startswith("target_loss 3.0 reached (best loss 2.5, trial 1-00)")


def test_stop_patience():
    cfg = {"max_iterations": 99, "patience": 2}
    assert not should_stop(_table([5.0, 6.0]), cfg, 2)[0]  # too early to tell
    assert not should_stop(_table([5.0, 6.0, 4.0]), cfg, 3)[0]  # improved in the last 2
    stop, reason = should_stop(_table([5.0, 4.0, 6.0, 4.0]), cfg, 4)  # equal is no improvement
    assert stop and reason == "patience: no improvement in the last 2 iteration(s)"
    failing = _table([5.0, 4.0, None, None]).query("trial == 't00'")  # recent iterations all failed
    assert should_stop(failing, cfg, 4) == (True, "patience: no successful trial in the last 2 iteration(s)")


def test_stop_walltime_and_failures_never_stop():
    cfg = {"max_iterations": 99, "max_walltime_min": 10}
    t0 = 1_000_000.0
    assert not should_stop(_table([5.0]), cfg, 1, started_at=t0, now=t0 + 9 * 60)[0]
    stop, reason = should_stop(_table([5.0]), cfg, 1, started_at=t0, now=t0 + 11 * 60)
    assert stop and reason.startswith("wall-time budget of 10 min used (11.0 min)")
    all_failed = _table([None, None, None]).query("trial == 't00'")
    assert not should_stop(all_failed, {"max_iterations": 99, "target_loss": 0.1, "patience": 1}, 3)[0]


def test_every_kind_is_registered():
    assert sorted(REGISTRY) == sorted(KINDS)


# ----------------------------------------------------------------------------- end to end
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_workflow_with_pso_end_to_end(tmp_path):
    """The tiny real search (gap_fit) with optimizer.kind: pso, 2 iterations x 2 particles."""
    import subprocess
    import sys

    import yaml

    cfg = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    cfg["results_dir"] = str(tmp_path / "results")
    cfg["optimizer"] = {"kind": "pso", "batch_size": 2, "seed": 7, "pso": {"c1": 1.0, "c2": 2.0}}
    cfg_file = tmp_path / "pso.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run(
        [str(snakemake), "--cores", "2", "--nolock", "--configfile", str(cfg_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "results" / "tiny"
    table = read_table(run / "trials.csv")
    assert len(table) == 4 and sorted(table["iteration"].unique()) == [0, 1]
    assert "- stop reason: max_iterations (2) reached" in (run / "summary.md").read_text()
    assert "optimiser: pso (batch 2, seed 7)" in (run / "summary.md").read_text()
    space = Space.from_config(cfg["space"])
    for it in (0, 1):
        state = read_yaml(run / f"iter{it}" / "proposals" / "optimizer_state.yaml")
        assert state["kind"] == "pso" and state["generation"] == it and len(state["particles"]) == 2
        props_it = [read_yaml(p) for p in sorted((run / f"iter{it}" / "proposals").glob("t*.yaml"))]
        proposed = [p["point"] for p in props_it]
        if it == 0:  # optimizer.default_first: particle 0 starts at gap's defaults (clipped into the space)
            assert props_it[0]["origin"] == "default" and proposed[0]["delta"] == 1.0
            assert proposed[1:] == [p["point"] for p in state["particles"]][1:]
        else:
            assert proposed == [p["point"] for p in state["particles"]]
    # iteration 1 is what the swarm makes of iteration 0's trials, replayed from the table
    props, state = propose(read_table(run / "iter0" / "table.csv"), space, {**cfg["optimizer"]}, 1)
    assert [p.point for p in props] == [
        read_yaml(p)["point"] for p in sorted((run / "iter1" / "proposals").glob("t*.yaml"))
    ]
    best = table.loc[table.loc[table.iteration == 0, "loss"].idxmin()]
    assert state["global_best"]["loss"] == pytest.approx(best["loss"])


def test_config_checks_optimizer_section_before_any_job():
    from potune.config import deep_merge, load_yaml_file, resolve_config

    raw = load_yaml_file(REPO / "tests" / "configs" / "tiny.yaml")
    cfg = resolve_config(deep_merge(raw, {"optimizer": {"kind": "pso"}}), check_files=False)
    assert cfg["optimizer"]["pso"] == {"c1": 1.0, "c2": 2.0, "dt": 1.0, "inertia": 0.0, "boundary": "redraw"}
    assert cfg["optimizer"]["grid_points"] == 5
    bad = [
        ({"base_estimator": "GBRT"}, "GBRT is broken with scikit-learn"),
        ({"pso": {"boundry": "clip"}}, "did you mean 'optimizer.pso.boundary'"),
        ({"pso": {"boundary": "wrap"}}, "optimizer.pso.boundary"),
        ({"pso": {"dt": 0}}, "optimizer.pso.dt"),
        ({"kind": "grid", "grid_points": 100}, "the grid would have"),
        ({"kind": "cmaes"}, "unknown optimiser 'cmaes'"),
    ]
    for over, msg in bad:
        with pytest.raises(ConfigError, match=msg):
            resolve_config(deep_merge(raw, {"optimizer": over}), check_files=False)


@pytest.mark.parametrize("kind", ["bayes", "pso", "sobol"])
def test_fitter_defaults_are_the_first_trial_clipped_into_the_space(kind, tmp_path):
    """Iteration 0's first trial is gap's default point clipped into the space (n_sparse 1000
    -> 200, n_max 8 -> 6, delta 1.0 kept, sparse_method cur_points kept), marked origin
    default; the other trials and later iterations are the optimiser's."""
    from potune.trials import trial_row

    spec = {
        "cutoff": {"type": "real", "low": 3.0, "high": 4.5},
        "delta": {"type": "real", "low": 0.05, "high": 2.0, "prior": "log-uniform"},
        "n_max": {"type": "integer", "low": 2, "high": 6},
        "n_sparse": {"type": "integer", "low": 50, "high": 200},
        "sparse_method": {"type": "categorical", "values": ["random", "cur_points"]},
    }
    cfg = {"space": spec, "fixed": {}, "fitter": "gap", "optimizer": {"kind": kind, "batch_size": 3, "seed": 0}}
    props = propose_step(cfg, 0, None, tmp_path / "p0")
    first = read_yaml(tmp_path / "p0" / "t00.yaml")
    assert first["origin"] == "default" and props[0].origin == "default"
    assert first["point"] == {"cutoff": 4.5, "delta": 1.0, "n_max": 6, "n_sparse": 200, "sparse_method": "cur_points"}
    assert [p.origin for p in props[1:]] == ["optimizer", "optimizer"]
    # switched off: the optimiser's own point, no origin default
    off = propose_step({**cfg, "optimizer": {**cfg["optimizer"], "default_first": False}}, 0, None, tmp_path / "off")
    assert [p.origin for p in off] == ["optimizer"] * 3 and off[0].point != first["point"]
    # the trial table carries the origin
    for k, p in enumerate(props):
        d = tmp_path / "p0" / p.trial / "fold0"
        d.mkdir(parents=True)
        (d / "fit.json").write_text('{"status": "ok", "reason": "", "wall_s": 1.0, "peak_rss_mb": 1.0}')
        (d / "valid.json").write_text(
            '{"status": "ok", "reason": "", "loss": %s, "energy_rmse_mev": 1, "force_rmse": 0.1, '
            '"energy_mae_mev": 1, "force_mae": 0.1, "predict_ms_per_atom": 1}' % (1.0 + k)
        )
    rows = [trial_row(tmp_path / "p0" / f"{p.trial}.yaml", [tmp_path / "p0" / p.trial / "fold0"]) for p in props]
    assert [r["origin"] for r in rows] == ["default", "optimizer", "optimizer"]
    # later iterations: no default point
    table = pd.DataFrame([{**r, "iteration": 0} for r in rows])
    write_table(tmp_path / "table.csv", table)
    later = propose_step(cfg, 1, tmp_path / "table.csv", tmp_path / "p1")
    assert all(p.origin == "optimizer" for p in later)


def test_snap_defaults_cover_per_config_type_weights():
    from potune.fitters import default_values, get_fitter

    d = default_values(get_fitter("snap"), ["rcutfac", "eweight[AIMD-NVT]", "fweight", "twojmax"])
    assert d == {"rcutfac": 4.67637, "eweight[AIMD-NVT]": 100.0, "fweight": 1.0, "twojmax": 6}
    assert default_values(get_fitter("gap"), ["rcut_soft", "delta"]) == {"delta": 1.0}


@pytest.mark.parametrize(
    "cfg",
    [
        {"kind": "bayes", "liar": "kb"},
        {"kind": "bayes", "liar": "lp"},
        {"kind": "bayes", "liar": "cl_min"},
        {"kind": "sobol"},
        {"kind": "random"},
    ],
    ids=["kb", "lp", "cl_min", "sobol", "random"],
)
def test_lookahead_pending_points_are_taken_and_proposals_deterministic(cfg):
    """optimizer.lookahead: iteration n is proposed from the iterations before n - 1 with
    n - 1's proposals pending. The pending points are never proposed again, and the
    proposals depend only on (table, pending), not on when or in which order fits end."""
    cfg = {**cfg, "batch_size": 3, "seed": 5, "n_initial": 3}
    table = run_search(MIXED, cfg, 2)  # iterations 0 and 1 told
    pend, _ = propose(table[table.iteration == 0], MIXED, cfg, 1)
    pending = [p.point for p in pend]
    a, state = propose(table, MIXED, cfg, 2, pending=pending)
    b, _ = propose(
        table.sample(frac=1.0, random_state=3).sort_values("iteration", kind="stable"), MIXED, cfg, 2, pending=pending
    )
    assert [p.point for p in a] == [p.point for p in b]
    keys = {tuple(str(v) for v in p.values()) for p in pending}
    assert all(tuple(str(v) for v in p.point.values()) not in keys for p in a)
    # before any loss is known (iteration 1 proposed while iteration 0 runs)
    first, _ = propose(None, MIXED, cfg, 0)
    ahead, _ = propose(None, MIXED, cfg, 1, pending=[p.point for p in first])
    assert len(ahead) == 3 and not {tuple(map(str, p.point.values())) for p in ahead} & {
        tuple(map(str, p.point.values())) for p in first
    }


@pytest.mark.parametrize("ahead", [0, 1, 3, 7])
def test_lookahead_conditioning_sets(ahead):
    """Lookahead L: iteration n is told the trials of the iterations before n - L and has the
    proposals of n - L ... n - 1 pending. With batch 1 and L = cores - 1, proposal n
    conditions on exactly the trials < n - in_flight + 1, the other in-flight ones pending."""
    from potune.search.loop import conditioning
    from potune.search.optimizers import in_flight

    for n in range(12):
        told, pending = conditioning(n, ahead)
        assert told == (n - ahead - 1 if n > ahead else None)
        assert pending == list(range(max(0, n - ahead), n))
        # every earlier iteration is either told or pending, never both, never neither
        assert sorted([*range(0 if told is None else told + 1), *pending]) == list(range(n))
    assert in_flight({"batch_size": 1, "lookahead": ahead}) == ahead + 1
    assert in_flight({"batch_size": 4, "lookahead": ahead}) == 4 * (ahead + 1)
    # the initial design covers every trial proposed before any loss is known
    assert make_optimizer(MIXED, {"kind": "bayes", "batch_size": 2, "lookahead": ahead}).n_initial == 2 * (ahead + 1)
    assert make_optimizer(MIXED, {"kind": "bayes", "batch_size": 2, "lookahead": ahead, "n_initial": 3}).n_initial == 3


def test_lookahead_many_pending_deterministic_whatever_the_completion_order():
    """Batch 1, lookahead 3 (4 trials in flight), simulated asynchronously: fits take random
    times, so when iteration n is proposed a different set of later trials has finished and
    the table rows come in another order. The workflow tells n the table of iteration
    n - 4 (the cumulative file), the rest pending: the proposals are the same whatever the
    fit times, and a pending point is never proposed again."""
    from potune.search.loop import conditioning

    cfg = {"kind": "bayes", "batch_size": 1, "seed": 3, "n_initial": 3}
    ahead, n_it = 3, 8

    def loss(point):
        return (float(point["cutoff"]) - 4.2) ** 2 + 0.1 * float(point["n_max"])

    def run(timing_seed):
        durations = np.random.default_rng(timing_seed).lognormal(0.0, 1.0, n_it)
        points, end, rows = {}, {}, []
        for n in range(n_it):
            told, pending = conditioning(n, ahead)
            # proposed once every iteration up to `told` has ended (and a slot is free)
            now = max([end[m] for m in range(told + 1)], default=0.0) if told is not None else 0.0
            finished = sorted((m for m in end if end[m] <= now), key=lambda m: end[m])  # completion order
            rows = [
                {
                    "iteration": m,
                    "trial": "t00",
                    "trial_id": f"{m}-00",
                    "status": "ok",
                    "loss": loss(points[m]),
                    **points[m],
                }
                for m in finished
            ]
            visible = [r for r in rows if told is not None and r["iteration"] <= told]  # iter<told>/table.csv
            table = pd.DataFrame(visible) if visible else None
            props, _ = propose(table, MIXED, cfg, n, pending=[points[m] for m in pending])
            assert len(props) == 1
            points[n] = props[0].point
            end[n] = now + durations[n]
            key = tuple(map(str, points[n].values()))
            assert all(key != tuple(map(str, points[m].values())) for m in pending)
        return [points[n] for n in range(n_it)]

    first = run(0)
    assert run(1) == first
    assert len({tuple(map(str, p.values())) for p in first}) == n_it


def test_lookahead_refused_for_pso_and_resolved_by_default():
    from potune.search.optimizers import check_optimizer_config, lookahead

    assert lookahead({"kind": "bayes"}) == 1 and lookahead({"kind": "pso"}) == 0
    assert lookahead({"kind": "bayes", "lookahead": 0}) == 0
    with pytest.raises(ConfigError, match="lookahead"):
        check_optimizer_config(MIXED, {"kind": "pso", "batch_size": 3, "lookahead": 1})
    opt = make_optimizer(MIXED, {"kind": "pso", "batch_size": 3})
    with pytest.raises(ConfigError, match="lookahead"):
        opt.ask(3, pending=[[4.0, 0.1, 3, "random"]])


def test_default_point_is_not_proposed_twice():
    """A one-dimensional categorical space: the optimiser's batch may hold the default value
    too; the default then takes its place and the optimiser's first point the other slot."""
    space = Space.from_config({"sparse_method": {"type": "categorical", "values": ["random", "cur_points", "uniform"]}})
    for seed in range(6):
        props, _ = propose(
            None, space, {"kind": "bayes", "batch_size": 3, "seed": seed}, 0, defaults={"sparse_method": "cur_points"}
        )
        values = [p.point["sparse_method"] for p in props]
        assert values[0] == "cur_points" and len(set(values)) == 3, values


def test_bayes_log_loss_models_the_logarithm_and_reports_losses():
    """optimizer.log_loss: the GP is told log(loss) (the minimiser is unchanged, a few huge
    losses no longer dominate the model); best_loss stays in loss units; proposals differ from
    the raw-loss model's but are as deterministic."""
    pts = [[1.0, 0.0], [5.0, 0.5], [9.0, -0.5], [3.0, 0.9]]
    losses = [2.0, 30000.0, 0.5, 0.0]  # heavy-tailed, and one loss at zero (floored)

    def run(log_loss: bool):
        opt = make_optimizer(REAL2, {"kind": "bayes", "seed": 3, "n_initial": 4, "log_loss": log_loss})
        opt.tell(pts, losses)
        nxt = opt.ask(2)
        return opt, nxt

    opt, nxt = run(True)
    assert np.allclose(opt.opt.yi, [math.log(2.0), math.log(30000.0), math.log(0.5), math.log(1e-12)])
    state = opt.state()
    assert state["log_loss"] is True and state["best_loss"] == pytest.approx(1e-12)
    assert run(True)[1] == nxt  # deterministic
    raw, raw_next = run(False)
    assert raw.opt.yi == losses and raw.state()["best_loss"] == 0.0 and raw_next != nxt


def test_log_loss_is_a_config_key():
    from potune.config import resolve_config

    cfg = {
        "data": {"train": "x.xyz"},
        "space": {"delta": {"type": "real", "low": 0.1, "high": 1.0}},
        "optimizer": {"kind": "bayes", "log_loss": True},
        "results_dir": "/tmp",
    }
    assert resolve_config(cfg, check_files=False)["optimizer"]["log_loss"] is True
    with pytest.raises(ConfigError, match="log_loss"):
        resolve_config({**cfg, "optimizer": {"kind": "bayes", "log_loss": "yes"}}, check_files=False)


def test_runs_recorded_before_log_loss_resume():
    """A run folder recorded before optimizer.log_loss existed is the same search as one with
    log_loss: false (the default then), and a different one with log_loss: true (the default
    now: such a run goes on with false when its config leaves the key out, see
    test_bad_input.py::test_run_recorded_before_a_default_changed_goes_on_as_it_was)."""
    import copy

    from potune.config import resolve_config, search_differences

    cfg = resolve_config(
        {
            "data": {"train": "x.xyz"},
            "space": {"delta": {"type": "real", "low": 0.1, "high": 1.0}},
            "optimizer": {"kind": "bayes"},
            "results_dir": "/tmp",
        },
        check_files=False,
    )
    assert cfg["optimizer"]["log_loss"] is True
    before = copy.deepcopy(cfg)
    del before["optimizer"]["log_loss"]
    raw_loss = copy.deepcopy(cfg)
    raw_loss["optimizer"]["log_loss"] = False
    assert search_differences(before, raw_loss) == []
    assert search_differences(before, cfg) == ["optimizer.log_loss: False -> True"]


def _optimisers_benchmark():
    """benchmarks/optimisers.py as a module."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "optimisers.py"
    spec = importlib.util.spec_from_file_location("potune_benchmark_optimisers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dimer_gap_benchmark_objective_is_the_workflows_loss():
    """benchmarks/optimisers.py's real objective dimer-gap4 (one GAP fit per evaluation, the
    workflow's split/fit/validate/collect steps): at GAP's default point (clipped into PPSO's
    space) a finite loss, 28.52 when measured (2026-12-03, quippy-ase 0.10.3); at trial 0-05
    of a workflow run of the same search (paper-ppso-joint-n4, loss 13.2953) the workflow's
    loss; and the first point again gives the same loss (each validation in a process of its
    own: soap_turbo keeps its radial basis between models of one process). ~8 s."""
    from potune.fitters import gap

    try:
        gap.find_gap_fit()
    except FileNotFoundError:
        pytest.skip("gap_fit not installed")
    bench = _optimisers_benchmark()
    obj = bench.real_objective("dimer-gap4")
    assert len(obj.space) == 13
    assert [p.name for p in obj.space.params if p.type == "integer"] == ["radial_enhancement", "zeta", "n_sparse"]
    default = obj.default_point()
    assert default["n_sparse"] == 40 and isinstance(default["zeta"], int)
    x0 = [default[n] for n in obj.space.names]
    first = obj(x0)
    assert math.isfinite(first) and first == pytest.approx(28.52, rel=0.1)
    trial_0_05 = {
        "rcut_soft": 0.6719948779563594,
        "atom_sigma_r": 0.47907934353960524,
        "atom_sigma_t": 1.8900149099623458,
        "atom_sigma_r_scaling": 0.7302203364896571,
        "atom_sigma_t_scaling": 0.21099055914045906,
        "amplitude_scaling": 1.2582163030794185,
        "central_weight": 1.8543091061357349,
        "radial_enhancement": 1,
        "zeta": 10,
        "delta": 0.7068186378590627,
        "sigma_energy": 0.007086915421096949,
        "sigma_force": 0.01739509897028332,
        "n_sparse": 40,
    }
    assert obj([trial_0_05[n] for n in obj.space.names]) == pytest.approx(13.2953, rel=0.02)
    assert obj(x0) == pytest.approx(first, rel=1e-6)
