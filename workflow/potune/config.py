"""Configuration: defaults deep-merged under the user's YAML, validated against the JSON
schema (``workflow/schemas/config.schema.yaml``), then checked for meaning (bounds, names
of hyperparameters, files) so that a mistake stops the run before any job, with a message
that names the key."""

from __future__ import annotations

import copy
import difflib
import functools
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .merge import REPLACE_WHOLE, deep_merge  # noqa: F401  (deep_merge: part of this module's API)
from .search.space import Space

PACKAGE_DIR = Path(__file__).resolve().parent
SCHEMA_PATH = PACKAGE_DIR.parent / "schemas" / "config.schema.yaml"
DEFAULTS_PATH = PACKAGE_DIR / "defaults.yaml"
#: sections taken whole from the user's config (never merged with the defaults')


#: libyaml's loader when PyYAML was built with it (10-20x faster than the pure-Python one)
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_file(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path) as fh:
            data = yaml.load(fh, Loader=_SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


@functools.cache
def _load_cached(path: Path, mtime_ns: int) -> dict:
    return load_yaml_file(path)


def load_defaults() -> dict:
    """The defaults of every key (a fresh copy; the file is parsed once per process)."""
    return copy.deepcopy(_load_cached(DEFAULTS_PATH, DEFAULTS_PATH.stat().st_mtime_ns))


def load_schema() -> dict:
    """The JSON schema of the configuration (a fresh copy; parsed once per process)."""
    return copy.deepcopy(_load_cached(SCHEMA_PATH, SCHEMA_PATH.stat().st_mtime_ns))


def resolve_ref(root: dict, ref: str) -> dict:
    """The part of schema ``root`` a local JSON pointer (``#/definitions/x``) names."""
    node = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _check_unknown_keys(raw: Any, schema: dict, path: str = "", root: dict | None = None) -> None:
    """Unknown keys, with a "did you mean" suggestion (before the schema's terser message)."""
    if not isinstance(raw, dict) or schema.get("additionalProperties", True) is not False:
        return
    props = schema.get("properties", {})
    for key, value in raw.items():
        if key not in props:
            close = difflib.get_close_matches(str(key), list(props), n=1, cutoff=0.6)
            hint = f"; did you mean '{path}{close[0]}'?" if close else f"; known keys: {', '.join(props)}"
            raise ConfigError(f"unknown config key '{path}{key}'{hint}")
        sub = props[key]
        if "$ref" in sub:
            sub = resolve_ref(root or schema, sub["$ref"])
        _check_unknown_keys(value, sub, f"{path}{key}.", root or schema)


def _validate_schema(cfg: dict, schema: dict) -> None:
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"config key '{key}': {err.message}")


def _check_hyperparameter_names(cfg: dict, space: Space) -> None:
    from .fitters import get_fitter

    fitter = get_fitter(cfg["fitter"])
    known = list(fitter.HYPERPARAMETERS)
    # a fitter may accept names beyond its table (e.g. snap's per-config_type "eweight[<ct>]")
    accepts = getattr(fitter, "accepts_hyperparameter", lambda n: False)
    for section, names in (("space", space.names), ("fixed", list(cfg.get("fixed") or {}))):
        for name in names:
            if name not in known and not accepts(name):
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known)}"
                raise ConfigError(f"{section}.{name}: not a hyperparameter of fitter '{cfg['fitter']}'{hint}")
    both = sorted(set(space.names) & set(cfg.get("fixed") or {}))
    if both:
        raise ConfigError(f"fixed.{both[0]}: is also in the search space; a hyperparameter is either fixed or searched")
    _check_values(cfg, space, fitter)
    check = getattr(fitter, "check_config", None)
    if check is not None:
        check(cfg, space)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _check_values(cfg: dict, space: Space, fitter) -> None:
    """Values every trial would reject, caught before any job: a fixed value of the wrong
    type or out of range, a search-space bound out of range.

    Uses the fitter's ``HYPERPARAMETERS`` defaults for types and, when it has them, its
    ``resolve_params``/``check_params`` for ranges (only checks of one hyperparameter on its
    own: relations between hyperparameters depend on the point and are left to the fit).
    """
    fixed = cfg.get("fixed") or {}
    defaults = fitter.HYPERPARAMETERS
    for name, value in fixed.items():
        default = defaults.get(name)
        if default is None or value is None:
            continue
        if _kind(value) != _kind(default) and not (_kind(default) == "number" and _kind(value) == "number"):
            raise ConfigError(
                f"fixed.{name}: expected a {_kind(default)} (like the default {default!r}), got {value!r}"
            )
    resolve = getattr(fitter, "resolve_params", None)
    check = getattr(fitter, "check_params", None)
    if resolve is None or check is None:
        return
    names = set(defaults)

    def problem(point: dict, name: str) -> str | None:
        try:
            check(resolve({**fixed, **point}))
        except (ValueError, TypeError, KeyError) as exc:
            msg = str(exc)
            others = {n for n in names if n != name and n in msg.replace(name, "")}
            if msg.startswith(f"{name} ") and not others:
                return msg
        return None

    # a point inside the space: the middle of every range, the first value of every category
    mid = {}
    for p in space.params:
        if p.type == "categorical":
            mid[p.name] = p.values[0]
        elif p.type == "integer":
            mid[p.name] = int(round((p.low + p.high) / 2))
        else:
            mid[p.name] = (p.low + p.high) / 2
    for name in fixed:
        msg = problem(mid, name)
        if msg:
            raise ConfigError(f"fixed.{name}: {msg}")
    for p in space.params:
        if p.type == "categorical":
            continue
        for bound in ("low", "high"):
            msg = problem({**mid, p.name: getattr(p, bound)}, p.name)
            if msg:
                raise ConfigError(f"space.{p.name}.{bound}: {msg}; trials with such a value would fail")


def _check_files(cfg: dict) -> None:
    data = cfg["data"]
    for key in ("train", "test", "validation"):
        p = data.get(key)
        if p is not None and not Path(p).is_file():
            raise ConfigError(f"data.{key}: file not found: {p}")
    method = cfg["split"]["method"]
    if method == "file" and not data.get("validation"):
        raise ConfigError("data.validation: split.method is 'file' but no validation file is given")
    if method != "file" and data.get("validation"):
        raise ConfigError(
            f"data.validation: a validation file is given but split.method is '{method}'; set split.method: file"
        )
    if cfg["optimizer"].get("priors") and not Path(cfg["optimizer"]["priors"]).is_file():
        raise ConfigError(f"optimizer.priors: file not found: {cfg['optimizer']['priors']}")


def check_writable(directory: str | os.PathLike, key: str = "results_dir") -> None:
    """Create ``directory`` if needed and check a file can be written there."""
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, prefix=".potune-write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{key}: cannot write results to {d}: {exc.strerror or exc}") from exc


def resolve_config(raw: dict, check_files: bool = True) -> dict:
    """Validate a user's configuration and return it with every default filled in.

    Parameters
    ----------
    raw
        The user's configuration (as loaded from YAML / given to Snakemake).
    check_files
        Also check that data files exist and the results directory is writable.

    Raises
    ------
    ConfigError
        Naming the offending key (with a suggestion for a misspelt one).
    """
    schema = load_schema()
    if not isinstance(raw, dict):
        raise ConfigError("config: expected a mapping")
    _check_unknown_keys(raw, schema, root=schema)
    cfg = deep_merge(load_defaults(), raw)
    _validate_schema(cfg, schema)
    if not cfg["data"].get("train"):
        raise ConfigError("data.train: no training data given")
    space = Space.from_config(cfg["space"])
    _check_hyperparameter_names(cfg, space)
    from .search.twostage import check_config as _check_two_stage

    _check_two_stage(cfg)
    from .search.optimizers import check_optimizer_config

    check_optimizer_config(space, cfg["optimizer"])
    if cfg["fitter"] == "snap":  # the nested search: auto resolved here, so jobs see true/false
        from .fitters.snap.nested import resolve_nested

        cfg["snap"]["nested"] = resolve_nested(cfg, space.names, n_folds(cfg))
    if check_files:
        _check_files(cfg)
        check_writable(Path(cfg["results_dir"]) / cfg["run_name"])
    return canonical_order(cfg)


#: mappings whose key order means something: the order of a search space's dimensions
ORDERED_MAPPINGS = (("space",), ("stage1", "space"))


def canonical_order(obj, path: tuple = ()):
    """``obj`` with every mapping's keys sorted, except the search spaces' own keys (the
    order of the optimiser's dimensions, kept as written; their specs are sorted).

    Snakemake re-runs a job whose params changed, and compares them as text: without this,
    reformatting the config file (a YAML dump sorts keys) would re-run every fit."""
    if isinstance(obj, dict):
        keys = list(obj) if path in ORDERED_MAPPINGS else sorted(obj, key=str)
        return {k: canonical_order(obj[k], path + (k,)) for k in keys}
    if isinstance(obj, list):
        return [canonical_order(v, path + ("[]",)) for v in obj]
    return obj


def n_folds(cfg: dict) -> int:
    return int(cfg["split"]["k"]) if cfg["split"]["method"] == "kfold" else 1


def export_library_path(lib_dir: str | os.PathLike) -> None:
    """Put ``lib_dir`` (the checkout's ``workflow/``) first on PYTHONPATH of every job this
    process starts, so jobs in the envs/ conda environments import this potune."""
    lib = str(lib_dir)
    current = os.environ.get("PYTHONPATH", "")
    if lib not in current.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (lib, current) if p)
