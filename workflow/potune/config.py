"""Configuration: defaults deep-merged under the user's YAML, validated against the JSON
schema (``workflow/schemas/config.schema.yaml``), then checked for meaning (bounds, names
of hyperparameters, files) so that a mistake stops the run before any job, with a message
that names the key."""

from __future__ import annotations

import copy
import difflib
import functools
import os
import re
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

#: a configuration file larger than this is refused unread (bytes)
MAX_YAML_BYTES = 4 * 1024 * 1024
#: a YAML document whose aliases expand to more nodes than this is refused (a "billion
#: laughs" file of 1 kB expands to 10^9 nodes; a real configuration has a few hundred)
MAX_YAML_NODES = 100_000


class YAMLInputError(ValueError):
    """A YAML document potune refuses: duplicate key, alias expansion too large."""


class _StrictLoader(_SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (YAML would keep the last
    and silently drop the first, e.g. a whole second ``optimizer:`` section)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<: *base' then overriding a key is meant
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                    seen.setdefault(key, line)
                except TypeError:
                    continue  # unhashable key: the base constructor says so
                if first is not None:
                    raise YAMLInputError(
                        f"line {line}: key {key!r} given twice in one mapping (first on line {first}); "
                        "YAML would silently keep only the second"
                    )
        return super().construct_mapping(node, deep=deep)


def _expanded_nodes(node, memo: dict, limit: int) -> int:
    """How many nodes ``node`` becomes once every alias is expanded (stops past ``limit``)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive structure counts once per visit
    n = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            n += _expanded_nodes(child, memo, limit)
            if n > limit:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            n += _expanded_nodes(k, memo, limit) + _expanded_nodes(v, memo, limit)
            if n > limit:
                break
    memo[key] = n
    return n


def load_yaml_text(text: str) -> Any:
    """Parse one YAML document strictly: no duplicate key, no alias expansion past
    :data:`MAX_YAML_NODES` nodes (raises :class:`YAMLInputError` or ``yaml.YAMLError``)."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        n = _expanded_nodes(node, {}, MAX_YAML_NODES)
        if n > MAX_YAML_NODES:
            raise YAMLInputError(
                f"its aliases (*name) expand to more than {MAX_YAML_NODES} values; "
                "a configuration has a few hundred (an alias bomb?)"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_yaml_file(path: str | os.PathLike) -> dict:
    """A configuration file as a mapping; refuses, naming the file (and line): a file over
    :data:`MAX_YAML_BYTES`, invalid YAML, a key given twice in one mapping, aliases that
    expand past :data:`MAX_YAML_NODES` values, a top level that is not a mapping."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(
                f"{path}: {size / 1024**2:.1f} MB; a configuration file may be at most "
                f"{MAX_YAML_BYTES // 1024**2} MB (is this the right file?)"
            )
        with open(path, encoding="utf-8") as fh:
            text = fh.read(MAX_YAML_BYTES + 1)
        data = load_yaml_text(text)
    except YAMLInputError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from exc
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


def integer_hyperparameters(fitter) -> set[str]:
    """Names of a fitter's integer hyperparameters: its ``INTEGER_HYPERPARAMETERS`` when it
    declares them, else those whose default is an integer."""
    declared = getattr(fitter, "INTEGER_HYPERPARAMETERS", None)
    if declared is not None:
        return set(declared)
    return {n for n, d in fitter.HYPERPARAMETERS.items() if isinstance(d, int) and not isinstance(d, bool)}


def _is_integral(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()


def _check_integers(fixed: dict, space: Space, names: set[str], prefix: str = "") -> None:
    """An integer hyperparameter given a non-integer would be fitted rounded but recorded as
    written (``l_max: 3.7`` fitted as 3): refused, fixed or searched."""
    for name, value in fixed.items():
        if name in names and value is not None and _kind(value) == "number" and not _is_integral(value):
            raise ConfigError(f"{prefix}fixed.{name}: must be an integer, got {value!r}")
    for p in space.params:
        if p.name not in names:
            continue
        if p.type == "real":
            raise ConfigError(
                f"{prefix}space.{p.name}: an integer hyperparameter; search it as "
                f"{{type: integer, low: {int(p.low)}, high: {int(p.high)}}}, not type real"
            )
        if p.type == "categorical":
            bad = [v for v in p.values if _kind(v) == "number" and not _is_integral(v)]
            if bad:
                raise ConfigError(f"{prefix}space.{p.name}.values: must be integers, got {bad[0]!r}")


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
    _check_integers(fixed, space, integer_hyperparameters(fitter))
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


def resolve_config(raw: dict, check_files: bool = True, check_programs: bool = False) -> dict:
    """Validate a user's configuration and return it with every default filled in.

    Parameters
    ----------
    raw
        The user's configuration (as loaded from YAML / given to Snakemake).
    check_files
        Also check that data files exist, that ``optimizer.priors`` is a trial table and that
        the results directory is writable.
    check_programs
        Also check that the fitter's programs can be started (its ``check_programs``; the
        driver does, unless each fitter runs in its own conda environment).

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
    check_run_name(cfg.get("run_name"))
    from .report.references import references

    references(cfg.get("reference"))  # each entry's keys and numbers, named (before the schema's terser message)
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
        from .fitters.snap.nested import check_outer_loss, inner_folds, resolve_nested, warm_start_count

        cfg["snap"]["nested"] = resolve_nested(cfg, space.names, n_folds(cfg))
        warm_start_count((cfg["snap"].get("inner") or {}).get("warm_start"))  # a ConfigError if malformed
        if inner_folds((cfg["snap"].get("inner") or {}).get("folds")) > 1 and not cfg["snap"]["nested"]:
            raise ConfigError("snap.inner.folds: cross-validated inner losses need a nested search (snap.nested)")
        check_outer_loss(cfg)
    if check_files:
        _check_files(cfg)
        _check_priors(cfg, space)
        check_writable(Path(cfg["results_dir"]) / cfg["run_name"])
    if check_programs:
        from .fitters import get_fitter

        programs = getattr(get_fitter(cfg["fitter"]), "check_programs", None)
        if programs is not None:
            programs(cfg)
    return canonical_order(cfg)


#: a run name: one folder name of safe characters, not starting with '.' or '-'
RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def check_run_name(name: Any) -> None:
    """Refuse a run name that is not one safe folder name (``..``, ``a/b``, ``/abs`` would
    put results outside ``results_dir``)."""
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name):
        raise ConfigError(
            f"run_name: {name!r} is not a safe run name; results go to <results_dir>/<run_name>/, so it "
            "must be one folder name of letters, digits, '.', '_' and '-' (at most 128, not starting "
            "with '.' or '-')"
        )


def _check_priors(cfg: dict, space: Space) -> None:
    """``optimizer.priors`` (and ``stage1.optimizer.priors``) must be the trial table of an
    earlier search with its space's columns: read now, not in the first propose job."""
    import warnings

    from .search.loop import load_priors
    from .search.twostage import is_two_stage, stage1_config

    checks = [("optimizer.priors", cfg["optimizer"].get("priors"), space, cfg.get("fixed") or {})]
    if is_two_stage(cfg):
        s1 = stage1_config(cfg)
        checks.append(
            ("stage1.optimizer.priors", s1["optimizer"].get("priors"), Space.from_config(s1["space"]), s1["fixed"])
        )
    for key, path, sp, fixed in checks:
        if not path:
            continue
        if not Path(path).is_file():
            raise ConfigError(f"{key}: file not found: {path}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load_priors(path, sp, fixed)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("optimizer.priors:", f"{key}:", 1)) from None
        except Exception as exc:  # pandas raises many types for a file that is not a table
            raise ConfigError(
                f"{key}: {path} is not a trial table (the trials.csv of an earlier search): {type(exc).__name__}: {exc}"
            ) from None


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


#: parts of the resolved configuration that define a search's trials: a finished run may
#: be continued with other values of everything else (stop rules, resources, reference,
#: figures), but not of these (``None``: the whole section)
SEARCH_DEFINING: dict[str, tuple | None] = {
    "fitter": None,
    "data": None,
    "split": None,
    "loss": None,
    "space": None,
    "fixed": None,
    "optimizer": None,
    "strategy": None,
    "stage1": ("space", "optimizer", "objective", "proxy"),
    "kernel": ("n_sample", "seed", "bins", "max_structures", "objective"),
}


def search_definition(cfg: dict) -> dict:
    """The search-defining part of a resolved configuration (see :data:`SEARCH_DEFINING`),
    the fitter's own settings (``cfg[cfg["fitter"]]``) included."""
    out = {}
    two_stage = cfg.get("strategy") == "two_stage"
    for key, sub in SEARCH_DEFINING.items():
        if key not in cfg or (key in ("stage1", "kernel") and not two_stage):  # kernel: figures only
            continue
        value = cfg[key]
        out[key] = {k: value[k] for k in sub if k in value} if sub and isinstance(value, dict) else value
    fitter = cfg.get("fitter")
    if isinstance(fitter, str) and fitter in cfg:
        out[fitter] = cfg[fitter]
    return out


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): obj}


#: search-defining keys added after runs were recorded without them, with the value that
#: reproduces those runs exactly: a recorded configuration lacking one is the same search
ADDED_KEYS: dict[str, Any] = {"snap.inner.folds": 1, "optimizer.log_loss": False, "snap.outer_loss": "validation"}


def search_differences(old: dict, new: dict) -> list[str]:
    """Dotted keys whose search-defining values differ between two resolved configurations,
    each as ``key: old -> new`` (``space`` compared in order: it is the optimiser's)."""
    a, b = _flatten(search_definition(old)), _flatten(search_definition(new))
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, ADDED_KEYS.get(key, "(absent)")), b.get(key, ADDED_KEYS.get(key, "(absent)"))
        if va != vb:
            out.append(f"{key}: {va!r} -> {vb!r}")
    if not out and list(old.get("space") or {}) != list(new.get("space") or {}):
        out.append(f"space (order): {list(old['space'])} -> {list(new['space'])}")
    return out


#: search-defining defaults that changed, with the value they had before (and when): a run
#: folder recorded with that value, whose configuration leaves the key out, goes on as the
#: search it is (:func:`keep_recorded_defaults`)
CHANGED_DEFAULTS: dict[str, tuple[Any, str]] = {"optimizer.log_loss": (False, "2026-12-03")}


def _read_recorded(recorded_file: str | os.PathLike) -> dict | None:
    """The recorded configuration ``run/config.yaml`` of a run folder (None if there is none
    or it cannot be read: :func:`check_same_search` then has nothing to compare with)."""
    recorded_file = Path(recorded_file)
    if not recorded_file.is_file():
        return None
    try:
        with open(recorded_file) as fh:
            old = yaml.load(fh, Loader=_SafeLoader)
    except (OSError, yaml.YAMLError):
        return None
    return old if isinstance(old, dict) else None


def keep_recorded_defaults(cfg: dict, raw: dict, recorded_file: str | os.PathLike) -> tuple[dict, list[str]]:
    """Resume a run recorded before a default changed (:data:`CHANGED_DEFAULTS`) as the
    search it was: for each changed key that ``raw`` (the user's configuration) leaves out
    and whose recorded value (:data:`ADDED_KEYS`' value when the record predates the key) is
    the old default, ``cfg`` takes the old default.

    Returns the configuration (a copy when changed) and one note per key kept; a key the
    user sets, or a run folder without a record, keeps the current default."""
    old = _read_recorded(recorded_file)
    if old is None:
        return cfg, []
    given, recorded = _flatten(raw), _flatten(old)
    notes = []
    for key, (before, since) in CHANGED_DEFAULTS.items():
        if key in given or any(g.startswith(f"{key}.") for g in given):
            continue
        value = recorded.get(key, ADDED_KEYS.get(key, "(absent)"))
        if value != before:
            continue
        cfg = copy.deepcopy(cfg)
        *path, last = key.split(".")
        node = cfg
        for k in path:
            node = node[k]
        node[last] = before
        notes.append(
            f"{key}: {before!r}, as run '{cfg['run_name']}' was recorded (the default until {since}; "
            f"set {key} in the config to choose)"
        )
    return cfg, notes


def check_same_search(cfg: dict, recorded_file: str | os.PathLike, override: str) -> None:
    """Refuse to run ``cfg`` into a run folder whose recorded configuration
    (``run/config.yaml``) defines another search: Snakemake would refit every trial and
    replace the finished results. ``override`` names how to do it anyway."""
    recorded_file = Path(recorded_file)
    old = _read_recorded(recorded_file)
    if old is None:
        return
    diff = search_differences(old, cfg)
    if diff:
        shown = "; ".join(diff[:8]) + (f"; and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise ConfigError(
            f"run '{cfg['run_name']}' in {recorded_file.parent.parent} was a different search "
            f"(see {recorded_file}): {shown}. Running it would refit every trial and replace its "
            f"results; choose a new run_name, or {override} to replace them. (stop.*, resources "
            "and reference may change without this: they extend or re-report the same search)"
        )
