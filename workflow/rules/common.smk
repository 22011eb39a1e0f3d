# Configuration (defaults deep-merged, schema-validated, checked for meaning), data checks
# before any job, paths, and the input functions that walk the search-loop checkpoint.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from potune.config import deep_merge, load_yaml_file, n_folds, resolve_config
from potune.errors import PotuneError
from potune.io import read_yaml
from potune.steps import check_inputs

DEFAULT_CONFIG = Path(workflow.basedir) / "config" / "config.yaml"

try:
    # Without --configfile the documented default config runs; --config overrides merge into it.
    _raw = dict(config) if "data" in config else deep_merge(load_yaml_file(DEFAULT_CONFIG), dict(config))
    C = resolve_config(_raw)
    if workflow.is_main_process:
        check_inputs(C)
except PotuneError as exc:
    raise WorkflowError(f"potune: {exc}") from None

R = f"{C['results_dir']}/{C['run_name']}"
NF = n_folds(C)
FITTER = C["fitter"]
RES = C["resources"]


wildcard_constraints:
    iteration=r"\d+",
    trial=r"t\d+",
    fold=r"\d+",


localrules:
    all,
    propose,
    collect,
    trials_table,
    best_params,
    convergence,
    summary,
    record_run,
    parity,
    errors_by_config_type,
    landscape,
    cost,


def proposals_dir(iteration):
    """The proposals folder of an iteration (waits for its propose checkpoint)."""
    return checkpoints.propose.get(iteration=int(iteration)).output.proposals


def decision(iteration):
    return read_yaml(Path(proposals_dir(iteration)) / "decision.yaml")


def previous_table(wildcards):
    it = int(wildcards.iteration)
    return [] if it == 0 else [f"{R}/iter{it - 1}/table.csv"]


def first_decision(wildcards):
    return None if int(wildcards.iteration) == 0 else f"{R}/iter0/proposals/decision.yaml"


def iteration_trials(iteration):
    from potune.steps import proposal_trials

    return proposal_trials(proposals_dir(iteration))


def iteration_results(wildcards):
    """fit.json and valid.json of every trial and fold of one iteration."""
    files = []
    for t in iteration_trials(wildcards.iteration):
        for f in range(NF):
            d = f"{R}/iter{wildcards.iteration}/{t}/fold{f}"
            files += [f"{d}/fit.json", f"{d}/valid.json"]
    return files


def final_table(wildcards):
    """The cumulative trial table of the last iteration that ran."""
    it = 0
    while not decision(it)["stop"]:
        it += 1
    if it == 0:
        raise WorkflowError(f"potune: the search stopped before its first iteration: {decision(0)['reason']}")
    return f"{R}/iter{it - 1}/table.csv"


def split_outputs():
    out = {
        "train": expand(f"{R}/split/fold{{fold}}/train.xyz", fold=range(NF)),
        "valid": expand(f"{R}/split/fold{{fold}}/valid.xyz", fold=range(NF)),
        "full": f"{R}/split/full_train.xyz",
        "summary": f"{R}/split/summary.yaml",
    }
    if C["data"].get("test"):
        out["test"] = f"{R}/split/test.xyz"
    return out


def data_inputs(wildcards):
    return {k: C["data"][k] for k in ("train", "validation", "test") if C["data"].get(k)}


def final_targets():
    targets = [
        f"{R}/trials.csv",
        f"{R}/best/best.yaml",
        f"{R}/best/potential",
        f"{R}/convergence.png",
        f"{R}/summary.md",
        f"{R}/run/config.yaml",
        f"{R}/figures/parity.png",
        f"{R}/figures/landscape.png",
        f"{R}/figures/cost.png",
        f"{R}/figures/dimer.png",
    ]
    if C["data"].get("test"):
        targets += [f"{R}/best/test_errors.csv", f"{R}/figures/errors_by_config_type.png"]
    return targets


def parity_inputs(wildcards):
    d = {"valid": f"{R}/best/valid_predictions.npz"}
    if C["data"].get("test"):
        d["test"] = f"{R}/best/test_predictions.npz"
    return d


def dimer_data_inputs(wildcards):
    files = [f"{R}/split/full_train.xyz"]
    if C["data"].get("test"):
        files.append(f"{R}/split/test.xyz")
    return files


def summary_inputs(wildcards):
    d = {
        "table": f"{R}/trials.csv",
        "best": f"{R}/best/best.yaml",
        "refit": f"{R}/best/fit.json",
        "cost": f"{R}/figures/cost.csv",
    }
    if C["data"].get("test"):
        d["test"] = f"{R}/best/test_metrics.json"
    return d
