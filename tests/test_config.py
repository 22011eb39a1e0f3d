"""Configuration: defaults, schema, "did you mean", meaning checks, each a clear ConfigError
naming the key (called directly; tests/test_bad_input.py proves the wiring through Snakemake)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from potune.config import (
    check_writable,
    deep_merge,
    load_defaults,
    load_schema,
    load_yaml_file,
    n_folds,
    resolve_config,
    resolve_ref,
)
from potune.errors import ConfigError
from potune.search.space import Space, parse_parameter

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"


@pytest.fixture
def cfg() -> dict:
    """The tiny test config with repository-relative data paths made absolute."""
    c = load_yaml_file(TINY)
    for k in ("train", "test"):
        c["data"][k] = str(REPO / c["data"][k])
    return c


def error_of(raw: dict, check_files: bool = False) -> str:
    with pytest.raises(ConfigError) as exc:
        resolve_config(raw, check_files=check_files)
    return str(exc.value)


def test_tiny_and_default_configs_resolve(cfg, tmp_path):
    cfg["results_dir"] = str(tmp_path)
    out = resolve_config(cfg)
    assert out["optimizer"]["batch_size"] == 2
    assert out["split"]["always_train"] == ["isolated_atom"]  # from the defaults
    default = load_yaml_file(REPO / "config" / "config.yaml")
    assert resolve_config(default, check_files=False)["fixed"]["n_sparse"] == 200


def test_deep_merge_replaces_space_and_fixed_whole():
    base = {"space": {"a": 1}, "fixed": {"x": 1}, "stop": {"max_iterations": 5, "patience": None}}
    out = deep_merge(base, {"space": {"b": 2}, "fixed": {}, "stop": {"patience": 2}})
    assert out == {"space": {"b": 2}, "fixed": {}, "stop": {"max_iterations": 5, "patience": 2}}
    assert base["stop"] == {"max_iterations": 5, "patience": None}  # not modified


def test_defaults_and_schema_agree():
    """Every default key is in the schema and every schema key has a default (one place each).
    stage1.optimizer has none of its own: it is merged over ``optimizer``."""
    schema, defaults = load_schema(), load_defaults()

    def walk(d: dict, s: dict, path: str = ""):
        s = s.get("anyOf", [s])[0]  # reference: one mapping (the defaults' form) or a list of them
        props = s.get("properties", {})
        if "$ref" in s:
            props = resolve_ref(schema, s["$ref"]).get("properties", {})
        for k, v in d.items():
            assert k in props, f"default {path}{k} missing from the schema"
            if isinstance(v, dict) and k not in ("space", "fixed") and f"{path}{k}" != "stage1.optimizer":
                walk(v, props[k], f"{path}{k}.")
        for k in props:
            if k not in ("space", "fixed"):
                assert k in d, f"schema key {path}{k} has no default"

    walk(defaults, schema)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(optimiser={}), "unknown config key 'optimiser'; did you mean 'optimizer'?"),
        (lambda c: c["optimizer"].update(batchsize=3), "did you mean 'optimizer.batch_size'?"),
        (lambda c: c["stop"].update(max_iteration=3), "did you mean 'stop.max_iterations'?"),
        (lambda c: c["resources"]["fit"].update(mem=3), "did you mean 'resources.fit.mem_mb'?"),
        (lambda c: c.update(zzz=1), "unknown config key 'zzz'; known keys: run_name"),
        (
            lambda c: c["space"].update(cutof={"type": "real", "low": 1, "high": 4}),
            "space.cutof: not a hyperparameter of fitter 'gap'; did you mean 'cutoff'?",
        ),
        (
            lambda c: c["fixed"].update(n_sparce=3),
            "fixed.n_sparce: not a hyperparameter of fitter 'gap'; did you mean 'n_sparse'?",
        ),
    ],
    ids=["top", "optimizer", "stop", "resources", "no-suggestion", "space-name", "fixed-name"],
)
def test_unknown_keys_suggest(cfg, mutate, expected):
    mutate(cfg)
    assert expected in error_of(cfg)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda c: c["optimizer"].update(batch_size="4"),
            "config key 'optimizer.batch_size': '4' is not of type 'integer'",
        ),
        (
            lambda c: c["stop"].update(max_iterations=2.5),
            "config key 'stop.max_iterations': 2.5 is not of type 'integer'",
        ),
        (lambda c: c["data"].update(train=5), "config key 'data.train': 5 is not of type 'string'"),
        (lambda c: c.update(space=[1, 2]), "config key 'space'"),
        (lambda c: c.update(fixed=None), "config key 'fixed'"),
        (lambda c: c["split"].update(method="bootstrap"), "config key 'split.method'"),
        (lambda c: c["fixed"].update(zeta="abc"), "fixed.zeta: expected a number (like the default 4), got 'abc'"),
        (lambda c: c["fixed"].update(sparse_method=3), "fixed.sparse_method: expected a string"),
    ],
    ids=["batch-str", "iter-float", "train-int", "space-list", "fixed-null", "split-enum", "fixed-type", "fixed-str"],
)
def test_wrong_types(cfg, mutate, expected):
    mutate(cfg)
    assert expected in error_of(cfg)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda c: c["optimizer"].update(batch_size=0),
            "config key 'optimizer.batch_size': 0 is less than the minimum of 1",
        ),
        (lambda c: c["loss"].update(alpha=1.5), "config key 'loss.alpha': 1.5 is greater than the maximum of 1"),
        (lambda c: c["loss"].update(alpha=-0.1), "config key 'loss.alpha': -0.1 is less than the minimum of 0"),
        (lambda c: c["split"].update(fraction=1.0), "config key 'split.fraction'"),
        (lambda c: c["split"].update(method="kfold", k=1), "config key 'split.k'"),
        (
            lambda c: c["space"].update(cutoff={"type": "real", "low": 5.0, "high": 4.0}),
            "space.cutoff: low (5.0) > high (4.0)",
        ),
        (lambda c: c["space"].update(cutoff={"type": "real", "low": 4.0, "high": 4.0}), "space.cutoff: low == high"),
        (
            lambda c: c["space"].update(delta={"type": "real", "low": 0.0, "high": 2.0, "prior": "log-uniform"}),
            "space.delta: a log-uniform prior needs low > 0, got low = 0.0",
        ),
        (
            lambda c: c["space"].update(delta={"type": "real", "low": -1.0, "high": 2.0, "prior": "log-uniform"}),
            "space.delta: a log-uniform prior needs low > 0",
        ),
        (
            lambda c: c["space"].update(delta={"type": "real", "low": -1.0, "high": 2.0}),
            "space.delta.low: delta = -1.0 must be > 0",
        ),
        (
            lambda c: c["space"].update(sparse_method={"type": "categorical", "values": []}),
            "space.sparse_method.values: a categorical parameter needs a non-empty list of values",
        ),
        (lambda c: c["space"].update(sparse_method={"type": "categorical"}), "space.sparse_method.values"),
        (
            lambda c: (
                c["fixed"].pop("sparse_method"),
                c["space"].update(sparse_method={"type": "categorical", "values": ["random", "fancy"]}),
            ),
            "sparse_method: 'fancy' is not one of",
        ),
        (
            lambda c: c["space"].update(n_max={"type": "integer", "low": 1.5, "high": 4}),
            "space.n_max.low: must be an integer",
        ),
        (
            lambda c: c["space"].update(cutoff={"type": "float", "low": 1, "high": 4}),
            "space.cutoff.type: must be one of",
        ),
        (lambda c: c["space"].update(cutoff={"type": "real", "low": 1}), "space.cutoff.high: missing"),
        (
            lambda c: c["space"].update(cutoff={"type": "real", "low": 1, "high": 4, "step": 1}),
            "space.cutoff: unknown field(s) ['step']",
        ),
        (lambda c: c.update(space={}), "space: the search space is empty"),
        (lambda c: c["fixed"].update(cutoff=4.0), "fixed.cutoff: is also in the search space"),
        (lambda c: c["fixed"].update(n_sparse=-5), "fixed.n_sparse: n_sparse = -5 must be >= 1"),
        (lambda c: c["optimizer"].update(kind="bayesian"), "optimizer.kind: unknown optimiser 'bayesian'"),
        (lambda c: c.update(fitter="gapp"), "unknown fitter 'gapp'"),
    ],
    ids=[
        "batch<1",
        "alpha>1",
        "alpha<0",
        "fraction",
        "k<2",
        "low>high",
        "low==high",
        "log-low0",
        "log-lowneg",
        "delta-neg",
        "cat-empty",
        "cat-missing",
        "cat-bad-value",
        "int-float",
        "type",
        "missing-high",
        "unknown-field",
        "empty-space",
        "fixed-and-space",
        "fixed-range",
        "optimizer-kind",
        "fitter",
    ],
)
def test_meaning_checks(cfg, mutate, expected):
    mutate(cfg)
    assert expected in error_of(cfg)


def test_missing_data_files(cfg, tmp_path):
    cfg["results_dir"] = str(tmp_path)
    c = copy.deepcopy(cfg)
    c["data"]["train"] = str(tmp_path / "nope.xyz")
    assert error_of(c, check_files=True) == f"data.train: file not found: {tmp_path / 'nope.xyz'}"
    c = copy.deepcopy(cfg)
    c["data"]["test"] = str(tmp_path / "nope_test.xyz")
    assert "data.test: file not found" in error_of(c, check_files=True)
    c = copy.deepcopy(cfg)
    del c["data"]["train"]
    assert "data.train" in error_of(c)
    c = copy.deepcopy(cfg)
    c["split"]["method"] = "file"
    assert "data.validation: split.method is 'file' but no validation file is given" in error_of(c, check_files=True)
    c = copy.deepcopy(cfg)
    c["optimizer"]["priors"] = str(tmp_path / "old_trials.csv")
    assert "optimizer.priors: file not found" in error_of(c, check_files=True)


def test_unwritable_results_dir(cfg, tmp_path):
    """A results directory that cannot be created (a file is in the way; permissions are no
    test when the suite runs as root)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    cfg["results_dir"] = str(blocker / "results")
    msg = error_of(cfg, check_files=True)
    assert msg.startswith("results_dir: cannot write results to") and str(blocker) in msg
    with pytest.raises(ConfigError, match="results_dir"):
        check_writable(blocker)


def test_config_file_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: not valid YAML"):
        load_yaml_file(p)
    p.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level, got list"):
        load_yaml_file(p)
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml_file(tmp_path / "missing.yaml")
    p.write_text("")
    assert load_yaml_file(p) == {}


def test_n_folds(cfg):
    cfg["split"] = {"method": "kfold", "k": 3}
    assert n_folds(resolve_config(cfg, check_files=False)) == 3
    cfg["split"] = {"method": "random"}
    assert n_folds(resolve_config(cfg, check_files=False)) == 1


def test_space_round_trip_and_skopt():
    space = Space.from_config(
        {
            "cutoff": {"type": "real", "low": 4.0, "high": 5.5},
            "delta": {"type": "real", "low": 0.01, "high": 1.0, "prior": "log-uniform"},
            "n_max": {"type": "integer", "low": 3, "high": 6},
            "sparse_method": {"type": "categorical", "values": ["cur_points", "random"]},
        }
    )
    sk = space.to_skopt()
    for point in sk.rvs(20, random_state=0):
        d = space.to_dict(point)
        assert space.contains(d)
        assert space.to_point(d) == [d[n] for n in space.names]
        assert isinstance(d["n_max"], int) and isinstance(d["cutoff"], float)
    assert not space.contains({"cutoff": 6.0, "delta": 0.1, "n_max": 3, "sparse_method": "random"})
    with pytest.raises(KeyError, match="n_max"):
        space.to_point({"cutoff": 4.5, "delta": 0.1, "sparse_method": "random"})
    with pytest.raises(ConfigError, match="contains duplicates"):
        parse_parameter("x", {"type": "categorical", "values": [1, "1"]})


def test_shipped_yaml_is_plain_data():
    """No config file of the repository relies on YAML tags (no code in configs)."""
    for p in [REPO / "config" / "config.yaml", TINY]:
        assert "!!" not in p.read_text()
        yaml.safe_load(p.read_text())


def test_lookahead_bounds(cfg, tmp_path):
    """optimizer.lookahead: any whole number from 0 to 64 (null: the optimiser's default)."""
    cfg["results_dir"] = str(tmp_path)
    for ok in (None, 0, 1, 7, 64):
        c = copy.deepcopy(cfg)
        c["optimizer"]["lookahead"] = ok
        assert resolve_config(c)["optimizer"]["lookahead"] == ok
    for bad in (-1, 65, 1.5, "2"):
        c = copy.deepcopy(cfg)
        c["optimizer"]["lookahead"] = bad
        assert "optimizer.lookahead" in error_of(c)


#: the search-defining keys a resolved configuration had before ADDED_KEYS existed (2026-12-03:
#: the keys from defaults.yaml and the shipped configs, user-chosen space/fixed/data excluded).
#: Runs recorded then lack every key added since; each added key needs an ADDED_KEYS entry
#: (the value that reproduces those runs) or they no longer resume as the same search.
KEYS_BEFORE_ADDED_KEYS = {
    *("fitter", "strategy", "loss.alpha", "loss.kind"),
    *(f"gap.{k}" for k in ("descriptor", "e0_method", "energy_only", "sparse_jitter", "two_body")),
    *(f"kernel.{k}" for k in ("bins", "max_structures", "n_sample", "seed")),
    *(f"kernel.objective.{k}" for k in ("kind", "skew_weight", "std_weight")),
    *(
        f"optimizer.{k}"
        for k in (
            "acq_func", "base_estimator", "batch_size", "default_first", "failure_penalty", "grid_points",
            "initial_design", "kind", "liar", "lookahead", "n_initial", "priors", "seed",
        )
    ),
    *(f"optimizer.pso.{k}" for k in ("boundary", "c1", "c2", "dt", "inertia")),
    *(f"snap.{k}" for k in ("bzeroflag", "chemflag", "descriptor_cache", "nested", "svd_rcond", "switchflag")),
    *(f"snap.inner.{k}" for k in ("batch_size", "evaluations", "initial_design", "kind", "n_initial", "warm_start")),
    *(f"split.{k}" for k in ("always_train", "fraction", "k", "method", "seed")),
    *(f"stage1.optimizer.{k}" for k in ("batch_size", "kind", "n_initial")),
    "stage1.objective",
    *(
        f"stage1.proxy.{k}"
        for k in ("delta", "energy_only", "max_structures", "n_sparse", "seed", "sigma_energy", "sigma_force")
    ),
}  # fmt: skip


def test_every_added_search_defining_key_lets_old_runs_resume():
    """A search-defining key added to the defaults (or the shipped configs) after runs were
    recorded must be in ADDED_KEYS: otherwise every earlier run folder is refused as "a
    different search" (it happened with optimizer.log_loss). And ADDED_KEYS names only keys
    that exist."""
    from potune.config import ADDED_KEYS, _flatten, search_definition, search_differences

    keys = set()
    # one of each kind (the Si and Li examples read their data to resolve: seconds each)
    examples = ("qsnap-cu-xpot-nested", "qsnap-ni-heldout-nested", "ppso-dimer-joint", "ppso-dimer-two-stage")
    configs = [
        *(REPO / "tests" / "configs").glob("*.yaml"),
        REPO / "config" / "config.yaml",
        *(REPO / "config" / "examples" / f"{name}.yaml" for name in examples),
    ]
    for path in configs:
        resolved = resolve_config(load_yaml_file(path), check_files=False)
        flat = _flatten(search_definition(resolved))
        keys |= {k for k in flat if not k.startswith(("space.", "fixed.", "data.", "stage1.space."))}
        # a run recorded before the added keys existed (with their ADDED_KEYS values) is the same search
        old = copy.deepcopy(resolved)
        for key, value in ADDED_KEYS.items():
            *parents, leaf = key.split(".")
            node = old
            for p in parents:
                node = node.get(p, {})
            if node.get(leaf) == value:
                node.pop(leaf)
        assert search_differences(old, resolved) == [], path
    new = sorted(keys - KEYS_BEFORE_ADDED_KEYS - set(ADDED_KEYS))
    assert not new, (
        f"new search-defining keys {new}: add each to potune.config.ADDED_KEYS with the value that "
        "reproduces runs recorded without it"
    )
    assert set(ADDED_KEYS) <= keys, sorted(set(ADDED_KEYS) - keys)
