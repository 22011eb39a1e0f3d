"""Property-based tests (hypothesis) of the space/config parser and the loss functions."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from potune.config import load_yaml_file, resolve_config
from potune.errors import ConfigError
from potune.evaluate.metrics import Residuals, gamma_loss, mae, rmse, weighted_loss
from potune.search.space import Parameter, Space, parse_parameter

REPO = Path(__file__).resolve().parents[1]
TINY = load_yaml_file(REPO / "tests" / "configs" / "tiny.yaml")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
# anything YAML can hold
yaml_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
yaml_value = st.recursive(
    yaml_scalar,
    lambda ch: st.one_of(st.lists(ch, max_size=3), st.dictionaries(st.text(max_size=6), ch, max_size=3)),
    max_leaves=6,
)


# ----------------------------------------------------------------------------- space parser
@st.composite
def real_spec(draw):
    log = draw(st.booleans())
    low = draw(positive if log else finite)
    high = draw((positive if log else finite).filter(lambda h: h > low))
    spec = {"type": "real", "low": low, "high": high}
    if log:
        spec["prior"] = "log-uniform"
    return spec


@st.composite
def integer_spec(draw):
    low = draw(st.integers(-1000, 1000))
    high = draw(st.integers(low + 1, low + 1000))
    return {"type": "integer", "low": low, "high": high}


categorical_spec = st.builds(
    lambda v: {"type": "categorical", "values": v},
    st.lists(st.one_of(st.integers(-5, 5), st.text(min_size=1, max_size=5)), min_size=1, max_size=5, unique_by=str),
)
valid_spec = st.one_of(real_spec(), integer_spec(), categorical_spec)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), valid_spec, min_size=1, max_size=5),
    st.integers(0, 2**31 - 1),
)
def test_valid_spaces_parse_and_sample_inside(specs, seed):
    space = Space.from_config(specs)
    assert space.names == list(specs)
    sk = space.to_skopt()
    for point in sk.rvs(5, random_state=seed):
        d = space.to_dict(point)
        assert space.contains(d), (specs, d)
        assert space.to_point(d) == [d[n] for n in space.names]
        for p in space.params:
            if p.type == "integer":
                assert isinstance(d[p.name], int) and p.low <= d[p.name] <= p.high
            elif p.type == "real":
                assert isinstance(d[p.name], float)


@FAST
@given(finite, finite, st.sampled_from(["real", "integer"]), st.sampled_from(["uniform", "log-uniform"]))
def test_bounds_are_checked(low, high, ptype, prior):
    if ptype == "integer":
        low, high = float(int(low)), float(int(high))
    spec = {"type": ptype, "low": low, "high": high, "prior": prior}
    if low < high and not (prior == "log-uniform" and low <= 0):
        assert isinstance(parse_parameter("x", spec), Parameter)
    else:
        with pytest.raises(ConfigError, match=r"^space\.x"):
            parse_parameter("x", spec)


@FAST
@given(yaml_value)
def test_any_yaml_value_as_a_parameter_gives_a_parameter_or_a_config_error(spec):
    """Whatever a user writes for one parameter: a Parameter or a ConfigError naming it, never
    another exception (no TypeError/KeyError traceback)."""
    try:
        p = parse_parameter("x", spec)
    except ConfigError as exc:
        assert str(exc).startswith("space.x")
    else:
        assert p.type in ("real", "integer", "categorical")


@FAST
@given(
    st.dictionaries(
        st.sampled_from(["type", "low", "high", "prior", "values"]),
        st.one_of(
            yaml_scalar,
            st.sampled_from(["real", "integer", "categorical", "log-uniform"]),
            st.lists(yaml_scalar, max_size=3),
        ),
        max_size=5,
    )
)
def test_near_valid_parameter_specs(spec):
    try:
        parse_parameter("x", spec)
    except ConfigError as exc:
        assert str(exc).startswith("space.x")


# ----------------------------------------------------------------------------- whole config
#: every top-level key the configuration accepts (the schema's properties): the generated
#: "unknown" keys must avoid all of them (Hypothesis also draws string literals of the code,
#: e.g. ``refit_forces``, so a hand-kept list misses keys)
SECTIONS = sorted(load_yaml_file(REPO / "workflow" / "schemas" / "config.schema.yaml")["properties"])


def _paths(d: dict, prefix=()):
    for k, v in d.items():
        yield prefix + (k,)
        if isinstance(v, dict):
            yield from _paths(v, prefix + (k,))


TINY_PATHS = list(_paths(TINY))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TINY_PATHS), yaml_value)
def test_any_value_at_any_key_gives_a_config_or_a_config_error(path, value):
    """Replacing any one value of a valid config by anything YAML can hold never crashes the
    parser: the config resolves, or a ConfigError names a key."""
    raw = copy.deepcopy(TINY)
    node = raw
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    try:
        cfg = resolve_config(raw, check_files=False)
    except ConfigError as exc:
        assert str(exc).strip()
    else:
        assert cfg["optimizer"]["batch_size"] >= 1
        assert 0 <= cfg["loss"]["alpha"] <= 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=12).filter(lambda k: k not in SECTIONS), yaml_value)
def test_unknown_top_level_keys_are_refused(key, value):
    raw = copy.deepcopy(TINY)
    raw[key] = value
    with pytest.raises(ConfigError, match="unknown config key"):
        resolve_config(raw, check_files=False)


# ----------------------------------------------------------------------------- metrics and losses
arrays = st.lists(finite, min_size=1, max_size=50).map(np.array)


@FAST
@given(arrays, st.floats(-100, 100, allow_nan=False))
def test_rmse_mae_properties(x, c):
    r, m = rmse(x), mae(x)
    assert r >= 0 and m >= 0
    assert m <= r * (1 + 1e-9) + 1e-12  # mean |x| <= sqrt(mean x^2)
    assert rmse(c * x) == pytest.approx(abs(c) * r, rel=1e-9, abs=1e-9)
    assert rmse(x[::-1]) == pytest.approx(r)


@FAST
@given(arrays, arrays, st.floats(0.0, 1.0))
def test_weighted_loss_is_a_convex_combination(de, df, alpha):
    e, f = rmse(de), rmse(df)
    loss = weighted_loss(de, df, alpha)
    assert loss == pytest.approx(alpha * e + (1 - alpha) * f, rel=1e-9, abs=1e-12)
    assert min(e, f) - 1e-9 * max(e, f, 1) <= loss <= max(e, f) + 1e-9 * max(e, f, 1)


@FAST
@given(st.floats(0, 1e4), st.floats(0, 10), st.floats(0, 1e4), st.floats(0, 10))
def test_gamma_loss_is_monotone(e1, f1, e2, f2):
    if e1 <= e2 and f1 <= f2:
        assert gamma_loss(e1, f1) <= gamma_loss(e2, f2)


@st.composite
def residual_sets(draw):
    n = draw(st.integers(1, 8))
    out = []
    for _ in range(n):
        atoms = draw(st.integers(1, 6))
        de = draw(st.floats(-10, 10))
        df = np.array(draw(st.lists(st.floats(-5, 5), min_size=3 * atoms, max_size=3 * atoms))).reshape(atoms, 3)
        ct = draw(st.sampled_from(["a", "b", "c"]))
        out.append((ct, atoms, de, df))
    return out


def _residuals(items) -> Residuals:
    r = Residuals()
    for ct, n, de, df in items:
        r.add(ct, n, de, df)
    return r


@FAST
@given(residual_sets(), st.randoms(use_true_random=False), st.floats(0, 1))
def test_residual_metrics_do_not_depend_on_order(items, rnd, alpha):
    shuffled = list(items)
    rnd.shuffle(shuffled)
    a, b = _residuals(items), _residuals(shuffled)
    for k, v in a.summary().items():
        assert b.summary()[k] == pytest.approx(v, rel=1e-9, abs=1e-12)
    assert b.loss("weighted", alpha) == pytest.approx(a.loss("weighted", alpha), rel=1e-9, abs=1e-12)
    assert b.loss("gamma") == pytest.approx(a.loss("gamma"), rel=1e-9, abs=1e-12)


@FAST
@given(residual_sets())
def test_per_config_type_counts_add_up(items):
    r = _residuals(items)
    by = r.by_config_type()
    assert sum(v["n_structures"] for v in by.values()) == len(items)
    assert sum(v["n_atoms"] for v in by.values()) == sum(n for _, n, _, _ in items)
    # the overall energy RMSE lies within the per-config_type ones
    vals = [v["energy_rmse_mev"] for v in by.values()]
    assert min(vals) - 1e-6 <= r.summary()["energy_rmse_mev"] <= max(vals) + 1e-6


@FAST
@given(st.floats(-1, 1), st.lists(st.integers(1, 64), min_size=1, max_size=10))
def test_same_error_per_atom_gives_that_rmse(err_per_atom, sizes):
    """Energy errors proportional to the atom count are one per-atom error, whatever the sizes."""
    r = _residuals([("x", n, err_per_atom * n, np.zeros((n, 3))) for n in sizes])
    assert r.summary()["energy_rmse_mev"] == pytest.approx(1000 * abs(err_per_atom), rel=1e-9, abs=1e-9)
    assert r.summary()["force_rmse"] == 0.0
    assume(err_per_atom != 0)
    assert math.isfinite(r.loss("weighted", 0.5))
