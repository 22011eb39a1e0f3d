# Configuration (defaults deep-merged, schema-validated, checked for meaning), data checks
# before any job, paths, and the input functions that walk the search-loop checkpoint.
import sys
import warnings
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
        with warnings.catch_warnings(record=True) as _warned:
            warnings.simplefilter("always")
            check_inputs(C)
        for _w in (w for w in _warned if issubclass(w.category, UserWarning)):  # suspicious but usable data
            print(f"potune: WARNING: {_w.message}", file=sys.stderr)
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


def proposals_dir(iteration):
    """The proposals folder of an iteration (waits for its propose checkpoint)."""
    return checkpoints.propose.get(iteration=int(iteration)).output.proposals


_DECISIONS = {}


def decision(iteration):
    """An iteration's decision.yaml (stop?, reason). Read once per run: the DAG is re-expanded
    after every iteration and final_table walks every decision each time."""
    path = Path(proposals_dir(iteration)) / "decision.yaml"
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _DECISIONS:
        _DECISIONS[key] = read_yaml(path)
    return _DECISIONS[key]


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


def best_found():
    """Whether some trial succeeded (waits for the `best_params` checkpoint). When none did,
    nothing is refitted or tested: the run ends with trials.csv, best.yaml (status: none)
    and a summary.md that lists why the trials failed."""
    from potune.steps import best_succeeded

    return best_succeeded(checkpoints.best_params.get().output.best)


def outcome_targets(wildcards):
    """The refitted potential and its test errors, when there is a best trial."""
    if not best_found():
        return []
    targets = [f"{R}/best/potential"]
    if C["data"].get("test"):
        targets.append(f"{R}/best/test_errors.csv")
    return targets


def final_targets():
    return [
        f"{R}/trials.csv",
        f"{R}/best/best.yaml",
        f"{R}/convergence.png",
        f"{R}/summary.md",
        f"{R}/run/config.yaml",
        outcome_targets,
    ]
