# Configuration (defaults deep-merged, schema-validated, checked for meaning), data checks
# before any job, paths, and the input functions that walk the search-loop checkpoint.
import atexit
import os
import sys
import warnings
from pathlib import Path

from snakemake.exceptions import IncompleteCheckpointException, WorkflowError
from snakemake.ioflags import before_update

from potune.config import (
    check_same_search,
    deep_merge,
    export_library_path,
    keep_recorded_defaults,
    load_yaml_file,
    n_folds,
    resolve_config,
)
from potune.errors import PotuneError
from potune.io import read_yaml
from potune.search.loop import conditioning, should_stop
from potune.search.optimizers import lookahead
from potune.cluster import resources as _resources
from potune.cluster.resources import runtime_min, runtime_ms
from potune.cluster.snakemake_fixes import apply_fixes as apply_snakemake_fixes
from potune.cluster.resume import (
    DriverLockError,
    acquire_driver_lock,
    release_driver_lock,
    runs_jobs,
    uses_conda,
    wait_for_previous_jobs,
)
from potune.data.check import check_inputs
from potune.trials import read_table

# Jobs (local, on SLURM, in the envs/ conda environments) import this checkout's potune.
export_library_path(Path(workflow.basedir) / "workflow")

if workflow.is_main_process:
    # a retried job lost at a checkpoint would end the search early with exit status 0
    apply_snakemake_fixes(workflow)

DEFAULT_CONFIG = Path(workflow.basedir) / "config" / "config.yaml"

try:
    # Config files are read again strictly (Snakemake's loader keeps the last of a key given
    # twice, and expands aliases): a duplicate key, an alias bomb or a huge file is refused.
    for _f in workflow.configfiles:
        load_yaml_file(_f)
    # --config overwrite=true: replace a finished run of another search (see check_same_search)
    _overwrite = str(config.pop("overwrite", False)).lower() in ("true", "1", "yes")
    # Without --configfile the documented default config runs; --config overrides merge into it.
    _raw = dict(config) if "data" in config else deep_merge(load_yaml_file(DEFAULT_CONFIG), dict(config))
    C = resolve_config(_raw, check_programs=workflow.is_main_process and not uses_conda(workflow))
    R = f"{C['results_dir']}/{C['run_name']}"
    if not _overwrite:
        # a run recorded before a default changed goes on as the search it was
        C, _kept = keep_recorded_defaults(C, _raw, f"{R}/run/config.yaml")
        if workflow.is_main_process:
            for _note in _kept:
                print(f"potune: {_note}", file=sys.stderr)
    if workflow.is_main_process:
        with warnings.catch_warnings(record=True) as _warned:
            warnings.simplefilter("always")
            check_inputs(C)
        for _w in (w for w in _warned if issubclass(w.category, UserWarning)):  # suspicious but usable data
            print(f"potune: WARNING: {_w.message}", file=sys.stderr)
        if not _overwrite:
            check_same_search(C, f"{R}/run/config.yaml", override="add `--config overwrite=true`")
except PotuneError as exc:
    raise WorkflowError(f"potune: {exc}") from None

# Scripts see the resolved configuration as snakemake.config.
config.clear()
config.update(C)

if workflow.is_main_process and any(a == "--unlock" for a in sys.argv):
    release_driver_lock(R, force=True)  # a driver killed on another host left its lock
if workflow.is_main_process and runs_jobs(sys.argv):
    # a second driver on this results folder (from another working directory: Snakemake's
    # own lock is per working directory) would run the same jobs into the same files
    try:
        acquire_driver_lock(R)
    except DriverLockError as exc:
        raise WorkflowError(f"potune: {exc}") from None
    atexit.register(release_driver_lock, R)
    # after a driver was killed: its SLURM jobs still queued or running must not be submitted twice
    wait_for_previous_jobs(os.getcwd(), R, say=lambda msg: print(f"[potune] {msg}", file=sys.stderr))
NF = n_folds(C)
FITTER = C["fitter"]
RES = C["resources"]
# What a rule's params carry decides what re-runs when the configuration changes, so rules
# get only the parts that define their results: `stop`, `resources` and `reference` never
# re-run a fit (raising stop.max_iterations extends a finished search).
# the fitter's settings as jobs see them: snap.nested/snap.inner travel in the proposals of a
# nested search, so a search that is not nested has the same params as before they existed
FIT_SETTINGS = {k: v for k, v in C.get(FITTER, {}).items() if not (FITTER == "snap" and k in ("nested", "inner"))}
SEARCH = {k: FIT_SETTINGS if k == FITTER else C[k] for k in ("fitter", FITTER, "space", "fixed", "optimizer", "loss")}
# nested SNAP search (snap.nested): the inner search's space, optimiser and loss, carried by
# every proposal to its fit job; the outer optimiser searches the rest of the space
INNER = None
if FITTER == "snap":
    from potune.fitters.snap.nested import inner_config

    INNER = inner_config(C)
INNER_PARAM = {"inner": INNER} if INNER else {}
# snap.inner.folds > 1: the descriptor caches hold the inner cross-validation's blocks
CV_PARAM = {"cv": INNER["cv"]} if INNER and INNER.get("cv") else {}
SEARCH.update(INNER_PARAM)
DATA = {
    "data": C["data"],
    "split": C["split"],
    "require_forces": not C.get(FITTER, {}).get("energy_only", False) or bool(C.get("refit_forces")),
}


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


def job_mem_mb(kind, params_file, train_file, attempt):
    """mem_mb of a fit/refit/validate job (see potune.cluster.resources.job_mem_mb)."""
    return _resources.job_mem_mb(RES[kind], FITTER, C.get(FITTER, {}), params_file, train_file, attempt)


def proposals_dir(iteration):
    """The proposals folder of an iteration (waits for its propose checkpoint)."""
    return checkpoints.propose.get(iteration=int(iteration)).output.proposals


def settled(path):
    """``path``, an output of a search-loop checkpoint (an iteration's proposals or table),
    flagged ``before_update`` once Snakemake has registered that checkpoint as done in this
    driver (it finished, or its output was found up to date), else as it is.

    A flagged input has no producing job in the DAG, so a later iteration's `propose` or
    `collect` asking for an earlier iteration's finished table or proposals does not hold
    that iteration's jobs in the DAG: once the search loop has walked past an iteration, its
    jobs leave the DAG (Snakemake drops jobs that no target depends on). Without this the
    DAG holds every earlier iteration, and Snakemake re-checks all of them after each
    checkpoint (`DAG.update_needrun`), so the driver's cost per iteration grows with the
    depth of the search (benchmarks/README.md, "Asynchronous proposals"). The path is the
    same either way, so the flag never changes a job's recorded input files (nothing
    re-runs for it). An output is registered only once its job has finished in this driver
    or Snakemake has found it up to date (not incomplete, not older than its inputs, same
    parameters), as the walk reaches it on each resume (walk_loop); a registered output is
    not made again by the same driver, so nothing needs to wait for its job any more."""
    return before_update(path) if path in checkpoints.created_output else path


def previous_table(wildcards):
    it = int(wildcards.iteration)
    return [] if it == 0 else [settled(f"{R}/iter{it - 1}/table.csv")]


# optimizer.lookahead: iteration n is proposed from the table of the iterations before
# n - LOOKAHEAD, the proposals of the iterations in between being pending points; so the
# next iteration's fits start while the slowest fits of this one still run, and the
# proposals do not depend on the order in which fits finish.
LOOKAHEAD = lookahead(C["optimizer"])


def propose_table(wildcards):
    told, _ = conditioning(int(wildcards.iteration), LOOKAHEAD)
    return [] if told is None else [settled(f"{R}/iter{told}/table.csv")]


def pending_proposals(wildcards):
    _, pending = conditioning(int(wildcards.iteration), LOOKAHEAD)
    return [settled(f"{R}/iter{m}/proposals") for m in pending]


def iteration_trials(iteration):
    from potune.steps.propose import proposal_trials

    return proposal_trials(proposals_dir(iteration))


def iteration_result_files(iteration):
    """fit.json and valid.json of every trial and fold of one iteration."""
    files = []
    for t in iteration_trials(iteration):
        for f in range(NF):
            d = f"{R}/iter{iteration}/{t}/fold{f}"
            files += [f"{d}/fit.json", f"{d}/valid.json"]
    return files


def iteration_results(wildcards):
    return iteration_result_files(wildcards.iteration)


def walk_loop(propose_checkpoint, collect_checkpoint, prefix, stop_cfg, search, ahead=0, results=None):
    """(last iteration, stop reason, files ahead) of a search loop: walk its `propose` and
    `collect` checkpoints until a stop rule holds.

    With ``ahead`` = L > 0 (optimizer.lookahead), while iteration n runs the walk also asks
    for iterations n + 1 ... n + L (those stop.max_iterations allows): for each, its proposals
    first, then, once they exist, its trials' result files (``results(n + k)``), so that
    their fits start before iteration n has finished (iteration n + k is proposed from the
    table of the iterations before n + k - L <= n, which exists). These are the third element; they are fits the stop rules may
    not need in the end (target_loss, patience, wall time), kept for an extended search.

    Each iteration's `propose` is asked for before its `collect`, so that the job walking the
    loop depends on both directly: on a resumed run whose proposals already exist, Snakemake
    registers a finished checkpoint only when a job depending on it is updated, and `collect`
    (not finished yet) would otherwise keep its proposals unresolved (<TBD>) and run without
    its trials.

    The stop rules are evaluated here, on the current configuration, not inside a job: so
    raising stop.max_iterations of a finished search continues it instead of re-running it.
    The wall-time rule compares the time each iteration's table was written with the start
    of the search, so the answer never changes once the table exists.

    An iteration whose `propose` or `collect` has not written its output yet ends the walk as
    ``(n, None)``: the caller then asks for that iteration's table as a plain input file. A job whose input is an unresolved checkpoint target is never re-run
    by Snakemake, so the job reading the final table (its output present from a finished
    search whose stop.max_iterations was raised) would otherwise never ask for the next
    iteration. A checkpoint whose output exists (a resumed run) is still waited for.

    Each walk starts where the previous one of this driver left: an iteration walked past
    (both checkpoints registered, no stop rule holding after it) stays so for the driver's
    life (a registered output is not re-run by the same driver; the stop decision depends
    only on that table and the configuration), so a walk costs O(1) checkpoint look-ups, not
    O(iterations) (each `.get` also copies Snakemake's set of registered outputs)."""
    n, started = _WALKED.get(prefix, (0, None))
    max_it = stop_cfg.get("max_iterations")
    while True:
        try:
            propose_checkpoint.get(iteration=n)
            table_file = collect_checkpoint.get(iteration=n).output.table
        except IncompleteCheckpointException as exc:
            if not os.path.exists(exc.targetfile):
                last = n + int(ahead) if max_it is None else min(n + int(ahead), int(max_it) - 1)
                return n, None, _ahead_files(propose_checkpoint, prefix, range(n + 1, last + 1), results)
            raise
        if started is None:
            started = float(read_yaml(f"{prefix}/iter0/proposals/meta.yaml")["started_at"])
        stop, reason = _stop_after(table_file, stop_cfg, n, started, search)
        if stop:
            return n, reason, []
        n += 1
        _WALKED[prefix] = (n, started)


_WALKED = {}  # loop prefix -> (iterations walked past, start time of the search): see walk_loop
_STOPS = {}


def _stop_after(table_file, stop_cfg, n, started, search):
    """should_stop after iteration n, computed once per version of its table: the walk is
    repeated after every checkpoint, and the answer depends only on the table, its time and
    the configuration (fixed for this driver), so the walk costs O(iterations) look-ups, not
    O(iterations) table reads and stop-rule evaluations."""
    mtime = os.path.getmtime(table_file)
    key = (table_file, mtime, n, started)
    if key not in _STOPS:
        _STOPS[key] = should_stop(read_table(table_file), stop_cfg, n + 1, started_at=started, now=mtime, search=search)
    return _STOPS[key]


def _ahead_files(propose_checkpoint, prefix, iterations, results):
    """The files of the iterations ``iterations`` (those ahead of the one running): for each,
    its proposals while they do not exist (a plain input: this job is looked at again when
    they are written), then its trials' result files."""
    files = []
    for n in iterations:
        proposals = f"{prefix}/iter{n}/proposals"
        if not os.path.exists(proposals):
            files.append(proposals)
            continue
        propose_checkpoint.get(iteration=n)  # a finished checkpoint whose output exists is waited for
        files += results(n)
    return files


def loop_end():
    """(last iteration, stop reason, files ahead) of the search (stage 2 of a two-stage run);
    the reason is None while the search runs."""
    return walk_loop(checkpoints.propose, checkpoints.collect, R, C["stop"], SEARCH, LOOKAHEAD, iteration_result_files)


def lookahead_inputs(wildcards):
    """The next iteration's proposals or trials while this one runs (optimizer.lookahead)."""
    return loop_end()[2]


def final_table(wildcards):
    """The cumulative trial table of the last iteration (or of the next one to run)."""
    return f"{R}/iter{loop_end()[0]}/table.csv"


def stop_info(wildcards):
    last, reason, _ = loop_end()
    return {"iterations": last + 1, "reason": reason}


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
    from potune.steps.best import best_succeeded

    return best_succeeded(checkpoints.best_params.get().output.best)


def result_outcome_targets(wildcards):
    """The refitted potential and its test errors, when there is a best trial."""
    if not best_found():
        return []
    return [f"{R}/best/potential"] + ([f"{R}/best/test_errors.csv"] if C["data"].get("test") else [])


def figure_outcome_targets(wildcards):
    """The best potential's figures (parity, dimer curve, errors by config_type), when there
    is a best trial."""
    if not best_found():
        return []
    targets = [f"{R}/figures/parity.png", f"{R}/figures/dimer.png"]
    if C["data"].get("test"):
        targets.append(f"{R}/figures/errors_by_config_type.png")
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
        "stop": f"{R}/stop.yaml",
        "best": f"{R}/best/best.yaml",
        "cost": f"{R}/figures/cost.csv",
    }
    if TWO_STAGE:
        d.update(stage1_table=f"{S1}/trials.csv", stage1_best=f"{S1}/best.yaml", stage1_stop=f"{S1}/stop.yaml")
    if best_found():
        d["refit"] = f"{R}/best/fit.json"
        # the best trial's validation predictions: is it better than a trivial model?
        d["valid_predictions"] = f"{R}/best/valid_predictions.npz"
        if FITTER == "gap" and C["kernel"]["figure"]:
            d["kernel_figure"] = f"{R}/figures/kernel_stats.json"
        if FITTER == "gap" and C["kernel"]["similarity_curve"]:
            d["similarity_curve"] = f"{R}/figures/similarity.json"
        if C["data"].get("test"):
            d["test"] = f"{R}/best/test_metrics.json"
            if C.get("refit_forces"):
                d["refit_comparison"] = f"{R}/best/refit_comparison.csv"
    return d


def result_targets():
    """Rule `results`: the search's numbers without its figures: the trial table, the best,
    summary.md, the refitted potential and its test errors; the kernel statistics and stage 1
    come with extra_targets()."""
    return [
        f"{R}/trials.csv",
        f"{R}/best/best.yaml",
        f"{R}/summary.md",
        f"{R}/run/config.yaml",
        result_outcome_targets,
    ]


def final_targets():
    """Rule `all`: result_targets() and the figures (convergence, landscape, cost, and the best
    potential's parity, dimer curve and errors by config_type)."""
    return [
        *result_targets(),
        f"{R}/convergence.png",
        f"{R}/figures/landscape.png",
        f"{R}/figures/cost.png",
        figure_outcome_targets,
    ]


# --- SNAP descriptor cache (rule `descriptors` in descriptors.smk) ---


def _snap_cache_on():
    return FITTER == "snap" and C.get("snap", {}).get("descriptor_cache", True)


SNAP_DATA_KEY = None
if _snap_cache_on():
    from potune.fitters import snap as _snap

    SNAP_DATA_KEY = _snap.data_key(C)

_SNAP_SPECS = {}  # cache key -> descriptor spec, filled as proposals are read


def _snap_proposal_key(prop_file):
    """(key, spec) of a proposal's descriptor hyperparameters; None if they are invalid
    (the fit then fails as 'invalid hyperparameters' without a descriptor job)."""
    prop = read_yaml(prop_file)
    hp = {**(prop.get("fixed") or {}), **prop["point"]}
    try:
        spec = _snap.descriptor_spec(hp, C.get("snap", {}))
    except (ValueError, TypeError, PotuneError):
        return None
    key = _snap.spec_key(spec, SNAP_DATA_KEY)
    _SNAP_SPECS[key] = spec
    return key, spec


def fit_extra_inputs(wildcards):
    """Extra inputs of a fit job (snap only): the trial's descriptor cache, and the
    fold's validation structures for a nested search."""
    extra = {"valid": f"{R}/split/fold{wildcards.fold}/valid.xyz"} if INNER else {}
    if not _snap_cache_on():
        return extra
    found = _snap_proposal_key(Path(proposals_dir(wildcards.iteration)) / f"{wildcards.trial}.yaml")
    if found is None:
        return extra
    return {**extra, "descriptors": f"{R}/descriptors/fold{wildcards.fold}/{found[0]}"}


def descriptors_inputs(wildcards):
    """The fold's training structures (and its validation structures in a nested search,
    whose descriptor cache holds the validation blocks too)."""
    d = {"train": f"{R}/split/fold{wildcards.fold}/train.xyz"}
    if INNER:
        d["valid"] = f"{R}/split/fold{wildcards.fold}/valid.xyz"
    return d


def descriptor_spec_for_key(wildcards):
    """The descriptor spec behind a cache key (from the proposals on disk if not seen yet)."""
    if wildcards.key not in _SNAP_SPECS:
        for f in sorted(Path(R).glob("iter*/proposals/t*.yaml")):
            found = _snap_proposal_key(f)
            if found is not None and found[0] == wildcards.key:
                break
    if wildcards.key not in _SNAP_SPECS:
        raise WorkflowError(f"potune: no proposal under {R} has descriptor cache key {wildcards.key}")
    return _SNAP_SPECS[wildcards.key]
