"""The nested SNAP search (issue #16): the outer search proposes the descriptor
hyperparameters; inside each fit job an inner ask/tell search tunes the weights and solver
settings of the space on the cached descriptor blocks, by the validation loss.

Why it is cheap: the descriptors of a trial (7-30 s) depend only on the descriptor
hyperparameters, and a weighted least squares on the compressed blocks takes well under a
second. The validation loss of any coefficients ``x`` follows from the validation fold's
blocks, compressed like the training blocks (:func:`.descriptors.compress_validation`):
``|A x - b|^2 == |R[:, :n] x - R[:, n]|^2`` exactly (the last row of the R factor of
``[A | b]`` holds the part of ``b`` outside the range of ``A``; nothing is discarded). The
losses are those of :mod:`potune.evaluate.metrics`:

- ``weighted``: ``alpha * RMSE(dE/sqrt(N)) + (1 - alpha) * RMSE(dF)`` from the
  ``energy_sqrtn`` blocks (energy rows times sqrt(N)) and the ``force`` blocks;
- ``gamma``: ``1000 RMSE(dE/N) + 1000 RMSE(dF) / 30`` from the ``energy`` blocks.

Redundant weights: with the unregularised solver ``svd`` only the ratios of the group
weights matter (all weights times c give the same coefficients). When every group's weight
is searched, the inner search pins one (the global ``eweight`` if it is used, else the
global ``fweight``, else the first used weight of the space) at the geometric mean of its
range (midpoint for a uniform prior) and widens the ranges of the other used weights so
that every ratio of the original box stays reachable: ``[low * a0 / a_high, high * a0 /
a_low]``. With ``ridge`` (or ``solver`` searched) nothing is pinned.

Cross-validated inner losses (``snap.inner.folds`` = k > 1): each weight setting is scored by
k-fold cross-validation on the trial's own training structures instead of the validation fold.
The folds are :func:`potune.data.split.kfold_split`'s (by structure, stratified per
config_type, seeded with ``split.seed``; isolated atoms and ``split.always_train`` stay in every
fold's training part; a config_type with fewer than k structures is in fewer than k folds). The
descriptor cache holds, per fold f, the R factors of the training rows outside fold f (one per
(config_type, kind) group, as ``blocks.npz``) and fold f's validation blocks
(:func:`.descriptors.compress_validation`), so an inner evaluation is k solves of today's size.
The CV loss is the loss of the pooled RMSEs: every held-out row of every fold, each predicted
by the model fitted without its fold, in one sum of squares per kind (:func:`cv_errors`) — the
RMSEs a single validation fold holding all training structures would give. The chosen weights
are fitted on the whole training file, and the trial's ``loss`` is still ``validate``'s, on the
validation fold, so the outer search selects the descriptor hyperparameters on the validation
fold and the inner search the weights by CV on the training structures. With
``snap.outer_loss: cv`` the trial's ``loss`` is instead its inner CV loss (the proposal's
``inner["outer_loss"]``; :func:`potune.trials.trial_row`), so the outer search selects the
descriptors by CV too and the validation fold only checks each trial (``valid_loss``).

Default weights first (with ``optimizer.default_first``, the default): every proposal carries,
in ``inner["default"]``, the fitter's default of each inner hyperparameter (``eweight`` 100,
``fweight`` 1, per config_type too, ...: :func:`default_inner_point`), and every inner search
evaluates it first (rescaled to the pinned weight, clipped, as the warm starts): a trial's
weights are then never worse, by the inner loss, than the fitter's default weights on the same
descriptors (on Si qSNAP, 60 Sobol weight settings at FitSNAP's default descriptors all scored
worse on validation than the default weights: README).

Warm start (``snap.inner.warm_start``): the outer proposal carries, in ``inner["start"]``, the
inner-best weights of the best trials its optimiser was told (:func:`warm_starts`); the inner
search evaluates them first (:func:`start_points`: rescaled to the pinned weight, clipped) and
tells them to its optimiser as priors, then continues with the optimiser's own points.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from ...errors import ConfigError
from .params import PER_CONFIG_TYPE, SETTINGS_DEFAULTS, default_of, resolve_params, split_name

#: plain names of the hyperparameters the inner search tunes (plus eweight[<ct>], fweight[<ct>])
INNER_HPS = ("eweight", "fweight", "solver", "ridge_alpha")

#: defaults of ``snap.inner`` (``warm_start``: see :func:`warm_start_count`)
INNER_DEFAULTS = {
    "evaluations": 60,
    "kind": "sobol",
    "batch_size": 5,
    "n_initial": 10,
    "initial_design": "sobol",
    "warm_start": 3,
}

#: told trials whose inner-best weights start each inner search with ``warm_start: true``
#: (3: on the Si qSNAP search, benchmarks/README.md "Warm-started inner searches")
WARM_START_DEFAULT_K = 3


def is_inner(name: str) -> bool:
    """Whether hyperparameter ``name`` is tuned by the inner search (weights, solver settings)."""
    base, _ = split_name(name)
    return base in PER_CONFIG_TYPE or name in ("solver", "ridge_alpha")


def resolve_nested(cfg: dict, space_names: Sequence[str], n_folds: int) -> bool:
    """``snap.nested`` (auto, true, false) as a boolean; raises :class:`ConfigError` for
    ``true`` where a nested search is impossible. ``auto``: nested when the space has both
    weight/solver and descriptor dimensions and there is one validation fold."""
    setting = (cfg.get("snap") or {}).get("nested", "auto")
    inner = [n for n in space_names if is_inner(n)]
    outer = [n for n in space_names if not is_inner(n)]
    if setting is False or setting == "false":
        return False
    why = ""
    if not inner:
        why = "no weight or solver hyperparameter (eweight, fweight, eweight[<ct>], solver, ridge_alpha) in space"
    elif not outer:
        why = "no descriptor hyperparameter in space (a weight-only search needs no nesting)"
    elif n_folds != 1:
        why = "split.method kfold: the inner search needs one validation fold"
    if setting == "auto" or setting is None:
        return not why
    if why:
        raise ConfigError(f"snap.nested: true is impossible here: {why}")
    return True


def inner_config(cfg: dict) -> dict | None:
    """What every proposal of a nested search carries for its fit job (``None`` when the
    search is not nested): the inner ``space``, the inner optimiser settings and the
    ``loss``."""
    s = cfg.get("snap") or {}
    if not s.get("nested"):
        return None
    space = {k: v for k, v in cfg["space"].items() if is_inner(k)}
    settings = {**INNER_DEFAULTS, **(s.get("inner") or {})}
    warm = warm_start_count(settings.pop("warm_start", None))
    settings.pop("folds", None)
    cv = cv_spec(cfg)
    from ...search.loop import uses_default_first

    default = default_inner_point(space) if uses_default_first(cfg.get("optimizer") or {}) else {}
    return {
        "space": space,
        **settings,
        **({"warm_start": warm} if warm else {}),  # off: the proposals are as before the switch
        **({"cv": cv} if cv else {}),  # folds 1: the proposals are as before the setting existed
        **({"default": default} if default else {}),  # default_first false: as before
        **({"outer_loss": "cv"} if s.get("outer_loss") == "cv" else {}),  # validation: as before
        "loss": {"kind": cfg["loss"]["kind"], "alpha": float(cfg["loss"].get("alpha", 0.5))},
    }


def default_inner_point(space: dict) -> dict:
    """The fitter's default of every inner hyperparameter of ``space`` (``{}`` when one has
    none, e.g. ``ridge_alpha``: a partial point cannot be evaluated)."""
    out = {}
    for name in space:
        v = default_of(name)
        if v is None:
            return {}
        out[name] = v
    return out


def inner_folds(value) -> int:
    """``snap.inner.folds`` as an int >= 1 (``None``: 1); :class:`ConfigError` otherwise."""
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"snap.inner.folds: expected an integer >= 1 (1: no cross-validation), got {value!r}")
    return int(value)


def cv_spec(cfg: dict) -> dict | None:
    """The cross-validation of the inner search (``snap.inner.folds`` > 1; ``None`` for 1):
    ``folds``, and the ``seed`` and ``always_train`` of :func:`potune.data.split.kfold_split`
    (``split.seed``, ``split.always_train``). Part of the descriptor cache key and of every
    proposal's ``inner``, so a cache is only used with the folds it was computed for."""
    s = cfg.get("snap") or {}
    folds = inner_folds((s.get("inner") or {}).get("folds"))
    if folds == 1 or not s.get("nested"):
        return None
    split = cfg.get("split") or {}
    return {
        "folds": folds,
        "seed": int(split.get("seed", 0)),
        "always_train": list(split.get("always_train", ["isolated_atom"])),
    }


def check_outer_loss(cfg: dict) -> str:
    """``snap.outer_loss`` (``validation`` or ``cv``); :class:`ConfigError` when ``cv`` has no
    inner cross-validation to take its loss from (a search that is not nested, or
    ``snap.inner.folds`` 1)."""
    s = cfg.get("snap") or {}
    value = s.get("outer_loss", "validation")
    if value not in ("validation", "cv"):
        raise ConfigError(f"snap.outer_loss: expected 'validation' or 'cv', got {value!r}")
    if value == "cv" and cv_spec(cfg) is None:
        why = "a nested search (snap.nested)" if not s.get("nested") else "snap.inner.folds > 1"
        raise ConfigError(f"snap.outer_loss: cv ranks trials by their inner cross-validation loss and needs {why}")
    return value


def warm_start_count(value) -> int:
    """``snap.inner.warm_start`` as the number of told trials whose weights start each inner
    search: ``true`` is :data:`WARM_START_DEFAULT_K`, ``false``/``0``/``None`` is off."""
    if value is None or value is False:
        return 0
    if value is True:
        return WARM_START_DEFAULT_K
    if isinstance(value, int) and value >= 0:
        return int(value)
    raise ConfigError(f"snap.inner.warm_start: expected true, false or a count >= 0, got {value!r}")


def warm_starts(table, inner: dict) -> list[dict]:
    """The warm-start points of a proposal (``snap.inner.warm_start``): the inner-best weights
    (the trial table's inner columns, the weights each model was fitted with) of the
    ``inner["warm_start"]`` best successful trials of ``table`` (lowest ``loss`` first, ties by
    iteration and trial). ``table`` is the table the outer optimiser was told for the
    proposal, so the points depend only on the configuration, the seed and that table, never
    on the order in which fits ended. Empty when off or when no trial qualifies."""
    k = int(inner.get("warm_start") or 0)
    if not k or table is None or len(table) == 0:
        return []
    import pandas as pd

    names = list(inner["space"])
    if any(n not in table.columns for n in names):
        return []
    loss = pd.to_numeric(table["loss"], errors="coerce")
    ok = table[(table["status"] == "ok") & loss.notna() & np.isfinite(loss)].assign(_loss=loss)
    ok = ok.sort_values(["_loss", "iteration", "trial"], kind="stable")
    out = []
    for row in ok.to_dict("records"):
        if any(pd.isna(row[n]) for n in names):
            continue
        out.append({n: _plain(row[n]) for n in names})
        if len(out) == k:
            break
    return out


def _plain(v):
    """A table value as a plain Python float/int/str (for the proposal's YAML)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v) if isinstance(v, (float, np.floating)) else int(v)
    return str(v)


def outer_space(space_cfg: dict, nested: bool) -> dict:
    """The space the outer optimiser searches: without the inner dimensions when nested."""
    return {k: v for k, v in space_cfg.items() if not (nested and is_inner(k))}


# ----------------------------------------------------------------------------- losses
def block_sq(R: np.ndarray, coef: np.ndarray) -> float:
    """``|A x - b|^2`` of a block from its ``[A|b]`` R factor."""
    n = R.shape[1] - 1
    r = R[:, :n] @ coef - R[:, n]
    return float(r @ r)


def validation_sums(coef: np.ndarray, vblocks: Sequence[dict], sums: dict | None = None) -> dict:
    """Per validation kind (energy, energy_sqrtn, force): ``[sum of squared residuals, rows]``
    of coefficients ``coef`` on ``vblocks``, added to ``sums`` when given."""
    sums = sums if sums is not None else {"energy": [0.0, 0], "energy_sqrtn": [0.0, 0], "force": [0.0, 0]}
    for b in vblocks:
        s = sums[b["kind"]]
        s[0] += block_sq(b["R"], coef)
        s[1] += int(b["n_rows"])
    return sums


def validation_errors(coef: np.ndarray, vblocks: Sequence[dict], loss_kind: str, alpha: float) -> dict:
    """``loss``, ``energy_rmse_mev`` (meV/atom) and ``force_rmse`` (eV/Å) of coefficients
    ``coef`` on the validation blocks, as :meth:`potune.evaluate.metrics.Residuals.loss`."""
    return errors_of_sums(validation_sums(coef, vblocks), loss_kind, alpha)


def cv_errors(folds: Sequence[dict], params: dict, loss_kind: str, alpha: float, rcond: float) -> dict:
    """The k-fold CV errors (as :func:`validation_errors`) of the weights ``params``: for each
    fold (``blocks``: the R factors of the training rows outside it, ``vblocks``: its
    validation blocks) the coefficients solved on ``blocks``, the residuals on ``vblocks``;
    the RMSEs pool every fold's held-out rows."""
    from .solve import solve

    sums = None
    for f in folds:
        coef, _ = solve(f["blocks"], params, rcond)
        sums = validation_sums(coef, f["vblocks"], sums)
    return errors_of_sums(sums, loss_kind, alpha)


def errors_of_sums(sums: dict, loss_kind: str, alpha: float) -> dict:
    """:func:`validation_errors` from :func:`validation_sums`'s sums."""
    rm = {k: math.sqrt(v[0] / v[1]) if v[1] else math.nan for k, v in sums.items()}
    if loss_kind == "weighted":
        e = rm["energy_sqrtn"] if alpha > 0 else 0.0
        f = rm["force"] if alpha < 1 else 0.0
        loss = alpha * e + (1.0 - alpha) * f
    elif loss_kind == "gamma":
        loss = 1000.0 * rm["energy"] + 1000.0 * rm["force"] / 30.0
    else:
        raise ValueError(f"unknown loss kind {loss_kind!r}")
    return {"loss": float(loss), "energy_rmse_mev": 1000.0 * rm["energy"], "force_rmse": rm["force"]}


# ----------------------------------------------------------------------------- the inner space
def _used_weight_names(groups: Sequence[tuple[str, str]], names: set[str]) -> list[str]:
    """The weight name that sets each (config_type, kind) group's weight: its override when
    it is fixed or searched (``names``), else the global one."""
    out = []
    for ct, kind in groups:
        base = "eweight" if kind == "energy" else "fweight"
        q = f"{base}[{ct}]"
        out.append(q if q in names else base)
    return out


def pinned_space(space_cfg: dict, hp: dict, groups: Sequence[tuple[str, str]]) -> tuple[dict, dict]:
    """``(space, pinned)``: the inner space with one redundant weight pinned (see the module
    docstring) and ``{name: value}`` of the pinned weight (empty when none is)."""
    solver = hp.get("solver", "svd")
    if "solver" in space_cfg or solver != "svd":
        return dict(space_cfg), {}
    used = _used_weight_names(groups, set(space_cfg) | set(hp))
    if not used or any(n not in space_cfg for n in used):
        return dict(space_cfg), {}  # some group's weight is fixed: the scale is set
    cands = [n for n in ("eweight", "fweight") if n in used] + [n for n in space_cfg if n in used]
    cands = [n for n in cands if space_cfg[n].get("type") == "real" and float(space_cfg[n]["low"]) > 0]
    if not cands:
        return dict(space_cfg), {}
    anchor = cands[0]
    a = space_cfg[anchor]
    lo, hi = float(a["low"]), float(a["high"])
    a0 = math.sqrt(lo * hi) if a.get("prior") == "log-uniform" else 0.5 * (lo + hi)
    out = {}
    for name, spec in space_cfg.items():
        if name == anchor:
            continue
        if name in used and spec.get("type") == "real":
            spec = {**spec, "low": float(spec["low"]) * a0 / hi, "high": float(spec["high"]) * a0 / lo}
        out[name] = spec
    return out, {anchor: a0}


# ----------------------------------------------------------------------------- the inner search
def inner_search(
    blocks: Sequence[dict],
    vblocks: Sequence[dict],
    hp: dict,
    inner: dict,
    seed: int,
    rcond: float = SETTINGS_DEFAULTS["svd_rcond"],
    cv_folds: Sequence[dict] | None = None,
) -> tuple[dict, list[dict]]:
    """Tune the weights/solver settings of ``inner["space"]`` on the training ``blocks`` by
    the validation loss on ``vblocks``; ``hp`` holds every other hyperparameter. With
    ``cv_folds`` (``snap.inner.folds`` > 1: per fold ``blocks`` and ``vblocks``, from
    :func:`.descriptors.load_cv_blocks`) the loss is instead the k-fold CV loss
    (:func:`cv_errors`) and ``vblocks`` is not used.

    Deterministic given ``seed``: the optimiser is potune's ask/tell optimiser
    (``inner["kind"]``) seeded with it; ``inner["evaluations"]`` solves in all.

    Returns ``(best, rows)``: ``best`` has ``params`` (the inner hyperparameters used, the
    pinned one included), ``loss``, ``energy_rmse_mev``, ``force_rmse``, ``index``; ``rows``
    is the inner trial table (one dict per solve).
    """
    from ...search.loop import failure_penalty
    from ...search.optimizers import make_optimizer
    from ...search.space import Space
    from .solve import solve

    groups = sorted({(b["config_type"], b["kind"]) for b in blocks})
    base = {k: v for k, v in hp.items() if k not in inner["space"]}
    space_cfg, pinned = pinned_space(inner["space"], base, groups)
    loss_cfg = inner["loss"]
    rows: list[dict] = []
    if not space_cfg:  # only a pinned weight: one solve
        space = None
    else:
        space = Space.from_config(space_cfg)
        opt_cfg = {
            k: v
            for k, v in inner.items()
            if k not in ("space", "loss", "evaluations", "warm_start", "start", "cv", "default", "outer_loss")
        }
        opt = make_optimizer(space, {**opt_cfg, "seed": int(seed)})
    total = int(inner["evaluations"]) if space is not None else 1
    batch = max(1, int(inner.get("batch_size", 5)))
    starts, origins = [], []
    default = [inner["default"]] if inner.get("default") else []
    if space is not None and (default or inner.get("start")):
        used = _used_weight_names(groups, set(inner["space"]) | set(base))
        starts = start_points([*default, *(inner.get("start") or [])], space, space_cfg, pinned, used)[:total]
        # start_points keeps the first of equal points: the default, when given, is starts[0]
        origins = ["default" if default and i == 0 else "warm" for i in range(len(starts))]
    while len(rows) < total:
        warm = len(rows) < len(starts)
        if warm:  # the warm-start points first, then the optimiser's design
            points = starts
        else:
            points = opt.ask(min(batch, total - len(rows))) if space is not None else [[]]
        if not points:
            break
        losses, failed = [], []
        for pt in points:
            point = {**(space.to_dict(pt) if space is not None else {}), **pinned}
            row = {"inner_trial": len(rows), **point}
            if starts:
                row["origin"] = origins[len(rows)] if warm else str(inner.get("kind", "sobol"))
            t0 = time.perf_counter()
            try:
                p = resolve_params({**base, **point})
                if cv_folds:
                    err = cv_errors(cv_folds, p, loss_cfg["kind"], float(loss_cfg["alpha"]), rcond)
                else:
                    coef, _ = solve(blocks, p, rcond)
                    err = validation_errors(coef, vblocks, loss_cfg["kind"], float(loss_cfg["alpha"]))
                if not math.isfinite(err["loss"]):
                    raise ValueError(f"non-finite loss {err['loss']}")
                row.update(status="ok", reason="", **err)
            except (ValueError, np.linalg.LinAlgError) as exc:
                row.update(status="failed", reason=f"{type(exc).__name__}: {exc}"[:300], loss=math.nan)
            row["solve_s"] = time.perf_counter() - t0
            rows.append(row)
            losses.append(row["loss"])
            failed.append(row["status"] != "ok")
        if space is not None:
            pen = failure_penalty([r["loss"] for r in rows if r["status"] == "ok"])
            # warm-start points are told as priors: a design (sobol...) then starts at its first point
            opt.tell(points, [pen if f else v for v, f in zip(losses, failed)], failed=failed, prior=warm)
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        raise ValueError(f"every inner solve failed (first: {rows[0]['reason'] if rows else 'none run'})")
    best = min(ok, key=lambda r: (r["loss"], r["inner_trial"]))
    names = [*(space.names if space is not None else []), *pinned]
    return {
        "params": {n: best[n] for n in names},
        "loss": best["loss"],
        "energy_rmse_mev": best["energy_rmse_mev"],
        "force_rmse": best["force_rmse"],
        "index": best["inner_trial"],
        "pinned": pinned,
        **({"folds": len(cv_folds)} if cv_folds else {}),
        **({"warm_start": origins.count("warm")} if "warm" in origins else {}),
        **({"default_start": True} if "default" in origins else {}),
        **({"best_origin": best["origin"]} if starts else {}),
    }, rows


def start_points(starts: Sequence[dict], space, space_cfg: dict, pinned: dict, used: Sequence[str]) -> list[list]:
    """The warm-start points (``snap.inner.warm_start``) as points of the inner ``space``.

    Each start point (``{name: value}``, e.g. the inner-best weights of an earlier trial) is
    first rescaled so that its ``pinned`` weight takes the pinned value (with ``svd`` only the
    ratios of the used weights ``used`` matter, so this keeps the model it stands for), then
    clipped into the space; a point equal to an earlier one is dropped. A point lacking a
    dimension of the space raises :class:`ValueError`.
    """
    out: list[list] = []
    for s in starts:
        missing = [n for n in [*space.names, *pinned] if n not in s]
        if missing:
            raise ValueError(f"warm-start point {s} lacks {missing}")
        vals = dict(s)
        for anchor, a0 in pinned.items():
            c = float(a0) / float(s[anchor])
            vals = {
                n: float(v) * c if n in used and space_cfg.get(n, {}).get("type") == "real" else v
                for n, v in vals.items()
            }
        pt = space.clip_point(vals, space.to_point(vals))
        if not any(all(_same(a, b) for a, b in zip(pt, q)) for q in out):
            out.append(pt)
    return out


def _same(a, b) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-12)
    except (TypeError, ValueError):
        return a == b
