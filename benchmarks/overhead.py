"""What the Snakemake workflow costs beyond its fits, measured on this machine.

Three measurements, all with real (tiny) gap_fit fits on the C-GAP-17 dimer curve
(``data/misc/C_dimers_gap17.xyz.gz``: 30 two-atom structures, 10 sparse points, a fit is
a fraction of a second):

1. **Per-trial orchestration overhead.** The same trials (same config, seed, proposals)
   once through ``snakemake --cores 1`` (target ``trials.csv``: split, the propose/fit/
   validate/collect loop) and once through a plain Python loop calling the same library
   functions in one process (``potune.steps.{split,propose,fit,validate,collect}`` (split/propose_step/fit_step/validate_step/
   collect_step``). Overhead = (Snakemake wall - loop wall) / trials, and its share of the
   Snakemake wall time.
2. **Cost of the checkpoint re-expansion vs iteration count.** Searches of 10, 25 and 50
   iterations x batch 8 with ``--cores 2``. The Snakemake driver runs in this process's
   child with ``resource.getrusage(RUSAGE_SELF)`` read at its end, so its CPU time is the
   driver's own work (parsing, DAG building, the re-expansion after every ``propose``
   checkpoint, input functions, scheduling) and excludes the jobs, which run in their own
   processes. Reported per trial; it must grow no worse than linearly in the number of
   trials (constant per trial) and stay under ~0.3 s per trial at 50 x 8.
3. **Peak memory of the driver** (max RSS of the Snakemake process) at the largest run.

The optimiser is the real skopt ``bayes`` optimiser with ``n_initial`` = every trial of the
run, so every proposal comes from the Sobol initial design: the benchmark measures the
workflow, not Gaussian-process fitting (whose cost is the same with or without Snakemake).

Usage::

    .venv/bin/python benchmarks/overhead.py --quick     # < 3 min
    .venv/bin/python benchmarks/overhead.py             # full: 10/25/50 x 8 (~30 min on 2 idle cores)
    .venv/bin/python benchmarks/overhead.py --profile   # also cProfile the driver of the largest run
    # asynchronous proposals: batch 1, 2 trials in flight, growing searches, scaling only
    .venv/bin/python benchmarks/overhead.py --skip-overhead --depths --batch 1 --lookahead 1 \
        --iterations 25 50 100 200
    # driver CPU per further iteration at depth; --keep the base, then continue it with
    # another checkout of the workflow: --depth-base <kept folder>/res/depth_base
    .venv/bin/python benchmarks/overhead.py --skip-overhead --iterations --depths 50 100 200 \
        --extra 8 --batch 1 --lookahead 1 --keep

Writes ``benchmarks/out/overhead.csv`` (one row per measurement) and prints a table.
Other processes on the machine inflate the wall times, not the driver's CPU time.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
DEFAULT_DATA = REPO / "data" / "misc" / "C_dimers_gap17.xyz.gz"

#: runs the Snakemake CLI in this (child) process and records the driver's own resource use
DRIVER = r"""
import json, resource, sys, time
out = sys.argv[1]
argv = sys.argv[2:]
t0 = time.perf_counter()
rc = 0
profile = out + ".prof" if argv and argv[0] == "--profile" else None
if profile:
    argv = argv[1:]
from snakemake.cli import main
try:
    if profile:
        import cProfile
        cProfile.run("main(argv)", profile)
    else:
        main(argv)
except SystemExit as exc:
    rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
ru = resource.getrusage(resource.RUSAGE_SELF)
ch = resource.getrusage(resource.RUSAGE_CHILDREN)  # every job, and what the jobs ran (gap_fit)
with open(out, "w") as fh:
    json.dump({"rc": rc, "wall_s": time.perf_counter() - t0, "cpu_user_s": ru.ru_utime,
               "cpu_sys_s": ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024.0,
               "children_cpu_s": ch.ru_utime + ch.ru_stime}, fh)
sys.exit(rc)
"""


def make_config(
    results_dir: Path, run_name: str, data: Path, iterations: int, batch: int, lookahead: int | None = None
) -> dict:
    """A tiny real GAP search: C dimers, 10 sparse points, Sobol proposals only
    (``lookahead``: optimizer.lookahead, None for the default)."""
    return {
        "run_name": run_name,
        "results_dir": str(results_dir),
        "fitter": "gap",
        "data": {"train": str(data)},
        "split": {"method": "random", "fraction": 0.2, "seed": 0},
        "loss": {"kind": "weighted", "alpha": 0.5},
        "gap": {"descriptor": "soap", "e0_method": "average"},
        "fixed": {
            "zeta": 2,
            "n_sparse": 10,
            "sparse_method": "random",
            "l_max": 2,
            "n_max": 2,
            "cutoff_transition_width": 0.5,
        },
        "space": {
            "cutoff": {"type": "real", "low": 2.5, "high": 4.0},
            "delta": {"type": "real", "low": 0.1, "high": 3.0, "prior": "log-uniform"},
            "sigma_energy": {"type": "real", "low": 0.001, "high": 0.05, "prior": "log-uniform"},
            "sigma_force": {"type": "real", "low": 0.01, "high": 0.3, "prior": "log-uniform"},
        },
        "optimizer": {
            "kind": "bayes",
            "batch_size": batch,
            "n_initial": iterations * batch,
            "seed": 3,
            "lookahead": lookahead,
        },
        "stop": {"max_iterations": iterations},
        "resources": {
            "fit": {"threads": 1, "mem_mb": 2000, "runtime": 5},
            "validate": {"threads": 1, "mem_mb": 1000, "runtime": 5},
            "refit": {"threads": 1, "mem_mb": 2000, "runtime": 5},
        },
    }


def driver_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used itself, its children excluded
    (Linux /proc); None once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def run_snakemake(cfg: dict, work: Path, cores: int, profile: bool = False, trace_from: int | None = None) -> dict:
    """The search up to its trial table through Snakemake; the driver's own resource use.

    With ``trace_from`` = k, the driver's CPU time is also read (every 0.1 s) when each
    iteration's table from iteration k on appears: ``trace`` is the list of (iteration,
    driver CPU s) pairs, so that the cost of one more iteration at a given depth can be
    told apart from the driver's start-up and DAG building."""
    cfg_file = work / f"{cfg['run_name']}.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    target = f"{cfg['results_dir']}/{cfg['run_name']}/trials.csv"
    stats = work / f"{cfg['run_name']}.driver.json"
    args = (
        [PY, "-c", DRIVER, str(stats)]
        + (["--profile"] if profile else [])
        + [
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(REPO),
            "--cores",
            str(cores),
            "--configfile",
            str(cfg_file),
            "--quiet",
            "all",
            "--nolock",
            target,
        ]
    )
    log = work / f"{cfg['run_name']}.snakemake.log"
    t0 = time.perf_counter()
    run_dir = Path(cfg["results_dir"]) / cfg["run_name"]
    trace = []
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            args, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, "MPLBACKEND": "Agg"}
        )
        nxt = trace_from
        while proc.poll() is None:
            if nxt is not None and (run_dir / f"iter{nxt}" / "table.csv").exists():
                cpu = driver_cpu_s(proc.pid)
                if cpu is not None:
                    trace.append((nxt, cpu))
                nxt += 1
                continue
            time.sleep(0.1)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"snakemake failed (rc {proc.returncode}); see {log}:\n{log.read_text()[-3000:]}")
    out = json.loads(stats.read_text())
    out["process_wall_s"] = wall
    out["jobs_s"] = job_seconds(run_dir)
    out["trace"] = trace
    if profile:
        out["profile"] = str(stats) + ".prof"
    return out


def job_seconds(run_dir: Path, from_iteration: int = 0) -> float:
    """Seconds spent inside gap_fit (from the fit.json files), for context."""
    total = 0.0
    for f in run_dir.glob("iter*/t*/fold*/fit.json"):
        if int(f.parts[-4][4:]) >= from_iteration:
            total += float(json.loads(f.read_text()).get("wall_s") or 0.0)
    return total


def run_plain_loop(cfg: dict, until: int | None = None) -> dict:
    """The same search in one process: the library functions the rules call, in a loop.
    With ``until``, stop after iteration ``until - 1`` (a search to be continued)."""
    code = r"""
import json, sys, time, yaml
from pathlib import Path
t0 = time.perf_counter()
from potune.config import resolve_config, n_folds
from potune.data.check import check_inputs
from potune.steps.collect import collect_step
from potune.steps.fit import fit_step
from potune.steps.propose import propose_step, proposal_trials
from potune.steps.split import split
from potune.steps.validate import validate_step
from potune.search.loop import should_stop
from potune.trials import read_table
cfg = resolve_config(yaml.safe_load(open(sys.argv[1])))
check_inputs(cfg)
R = Path(cfg["results_dir"]) / cfg["run_name"]
split(cfg, R / "split")
nf = n_folds(cfg)
res = cfg["resources"]
prev = None
n_trials = 0
until = int(sys.argv[2]) if len(sys.argv) > 2 else cfg["stop"]["max_iterations"] + 1
names = list(cfg["space"]) + [k for k in (cfg.get("fixed") or {}) if k not in cfg["space"]]
search = {k: cfg[k] for k in ("fitter", cfg["fitter"], "space", "fixed", "optimizer", "loss")}
budget = cfg["stop"]["max_iterations"] * cfg["optimizer"]["batch_size"]
started = time.time()
for it in range(until):
    if it and should_stop(read_table(prev), cfg["stop"], it, started_at=started, search=search)[0]:
        break
    props = R / f"iter{it}" / "proposals"
    propose_step(search, it, prev, props)
    dirs = {}
    for t in proposal_trials(props):
        dirs[t] = []
        for f in range(nf):
            d = R / f"iter{it}" / t / f"fold{f}"
            fit_step(props / f"{t}.yaml", R / f"split/fold{f}/train.xyz", d / "model", d / "fit.json",
                           d / "fit.log", cfg["fitter"], cfg.get(cfg["fitter"], {}), threads=1,
                           mem_mb=res["fit"]["mem_mb"], runtime_min=res["fit"]["runtime"])
            validate_step(d / "fit.json", d / "model", R / f"split/fold{f}/valid.xyz", d / "valid.json",
                                cfg["fitter"], cfg["loss"])
            dirs[t].append(str(d))
        n_trials += 1
    table = R / f"iter{it}" / "table.csv"
    collect_step(names, it, prev, props, dirs, table, budget=budget)
    prev = table
import resource
ru, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": time.perf_counter() - t0, "n_trials": n_trials,
                  "cpu_s": ru.ru_utime + ru.ru_stime + ch.ru_utime + ch.ru_stime}))
"""
    cfg_file = Path(cfg["results_dir"]) / f"{cfg['run_name']}.yaml"
    cfg_file.parent.mkdir(parents=True, exist_ok=True)
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [PY, "-c", code, str(cfg_file)] + ([str(until)] if until else []),
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"plain loop failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = wall
    out["jobs_s"] = job_seconds(Path(cfg["results_dir"]) / cfg["run_name"])
    return out


def continue_with_snakemake(base: dict, depth: int, extra: int, work: Path, cores: int, profile: bool = False) -> dict:
    """Snakemake continues, for ``extra`` iterations, a search whose first ``depth``
    iterations the plain loop ran: the driver's cost of those iterations' checkpoint
    re-expansions at that depth (plus one parse and DAG build over ``depth`` iterations)."""
    src = Path(base["results_dir"]) / base["run_name"]
    cfg = copy.deepcopy(base)
    cfg["run_name"] = f"depth{depth}"
    cfg["stop"]["max_iterations"] = depth + extra
    dst = Path(cfg["results_dir"]) / cfg["run_name"]
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src / "split", dst / "split")
    for it in range(depth):
        shutil.copytree(src / f"iter{it}", dst / f"iter{it}")
    out = run_snakemake(cfg, work, cores=cores, profile=profile, trace_from=depth)
    out["jobs_s"] = job_seconds(dst, from_iteration=depth)
    # driver CPU per iteration once running at this depth: between the first new
    # iteration's table and the last one's (start-up, DAG building and the first
    # iteration's jobs excluded)
    tr = out["trace"]
    if len(tr) >= 2 and tr[-1][0] > tr[0][0]:
        out["cpu_per_iteration"] = (tr[-1][1] - tr[0][1]) / (tr[-1][0] - tr[0][0])
    n_new = len(list(dst.glob(f"iter{depth + extra - 1}/t*/fold0/valid.json")))
    if n_new == 0 or not (dst / "trials.csv").exists():
        sys.exit(f"the continued search at depth {depth} did not run its iterations; see {work}")
    return out


#: what each kind of job imports before it does any work (a job is a fresh Python process)
JOB_IMPORTS = {
    "fit": "import snakemake.script; from potune.steps.fit import fit_step; import potune.fitters.gap",
    "validate": "import snakemake.script; from potune.steps.validate import validate_step; import potune.evaluate.predict; "
    "import quippy.potential; import ase.io",
    "propose": "import snakemake.script; from potune.steps.propose import propose_step; import potune.search.loop; import skopt",
    "collect": "import snakemake.script; from potune.steps.collect import collect_step; import pandas",
    "bare python": "pass",
}


def job_startup(repeats: int = 3) -> list[dict]:
    """CPU seconds (user + sys) a job of each kind spends starting up: the least of
    ``repeats`` runs (the machine's other load only adds)."""
    import resource

    rows = []
    for kind, code in JOB_IMPORTS.items():
        best_cpu, best_wall = float("inf"), float("inf")
        for _ in range(repeats):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([PY, "-c", code], check=True, cwd=REPO)
            wall = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            best_cpu = min(best_cpu, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
            best_wall = min(best_wall, wall)
        rows.append({"measure": f"startup_{kind.replace(' ', '_')}", "total_cpu_s": best_cpu, "wall_s": best_wall})
    return rows


def same_trials(a: Path, b: Path) -> bool:
    """Both routes proposed the same points and got the same losses (a sanity check)."""
    import pandas as pd

    ta, tb = pd.read_csv(a), pd.read_csv(b)
    cols = ["trial_id", "cutoff", "delta", "sigma_energy", "sigma_force", "status"]
    return len(ta) == len(tb) and ta[cols].astype(str).equals(tb[cols].astype(str))


def write_csv(path: str, rows: list[dict]) -> Path:
    """(Re)write the CSV after every measurement, so an interrupted run keeps what it measured."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k != "measure", k))
    with open(out, "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=fields)
        wr.writeheader()
        wr.writerows(rows)
    return out


def print_table(rows: list[dict]) -> None:
    cols = [
        "measure",
        "depth",
        "iterations",
        "batch",
        "lookahead",
        "trials",
        "cores",
        "wall_s",
        "wall_s_per_trial",
        "driver_cpu_s",
        "driver_cpu_s_per_trial",
        "driver_maxrss_mb",
        "driver_cpu_s_first_table",
        "driver_cpu_s_per_iteration_running",
        "fit_s",
        "total_cpu_s",
        "overhead_s_per_trial",
        "overhead_pct",
        "overhead_cpu_s_per_trial",
        "overhead_cpu_pct",
    ]
    w = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in cols}
    print("  ".join(c.rjust(w[c]) for c in cols))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).rjust(w[c]) for c in cols))


def _fmt(v) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (finishes in < 3 min)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="training data (extxyz)")
    ap.add_argument("--iterations", type=int, nargs="*", help="iteration counts of the scaling runs (none: skip)")
    ap.add_argument("--batch", type=int, default=None, help="batch size of the scaling runs")
    ap.add_argument(
        "--overhead-trials",
        type=int,
        nargs=2,
        metavar=("ITERATIONS", "BATCH"),
        help="size of the Snakemake-vs-loop comparison",
    )
    ap.add_argument(
        "--depths",
        type=int,
        nargs="*",
        help="continue searches of this many iterations (run by the plain loop) with Snakemake",
    )
    ap.add_argument("--extra", type=int, default=None, help="iterations Snakemake adds at each depth")
    ap.add_argument(
        "--depth-base",
        default=None,
        help="continue this search folder (the depth_base of an earlier --keep run with the same "
        "--batch, --lookahead and at least max(--depths) iterations) instead of running the plain loop",
    )
    ap.add_argument(
        "--lookahead",
        type=int,
        default=None,
        help="optimizer.lookahead of the scaling and depth runs (default: the optimiser's, 1)",
    )
    ap.add_argument("--cores", type=int, default=2, help="--cores of the scaling runs")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the driver of the largest scaling run and of the deepest continuation",
    )
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "overhead.csv"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary results folder")
    a = ap.parse_args(argv)
    iters = a.iterations if a.iterations is not None else ([2, 4] if a.quick else [10, 25, 50])
    depths = a.depths if a.depths is not None else ([2, 6] if a.quick else [10, 25, 50])
    extra = a.extra or (1 if a.quick else 2)
    batch = a.batch or (2 if a.quick else 8)
    ov_it, ov_b = a.overhead_trials or ((2, 2) if a.quick else (4, 8))
    data = Path(a.data).resolve()
    work = Path(tempfile.mkdtemp(prefix="potune-overhead-"))
    rows: list[dict] = []
    t_start = time.perf_counter()
    try:
        if not a.skip_overhead:
            print("[startup] job start-up cost of each kind of job ...", flush=True)
            rows += job_startup()
            write_csv(a.out, rows)
            n = ov_it * ov_b
            cfg_s = make_config(work / "res", "overhead_snakemake", data, ov_it, ov_b)
            cfg_l = make_config(work / "res", "overhead_loop", data, ov_it, ov_b)
            print(f"[overhead] {n} trials through snakemake --cores 1 ...", flush=True)
            s = run_snakemake(cfg_s, work, cores=1)
            print(f"[overhead] the same {n} trials through a plain Python loop ...", flush=True)
            lp = run_plain_loop(cfg_l)
            same = same_trials(
                work / "res/overhead_snakemake/trials.csv", work / f"res/overhead_loop/iter{ov_it - 1}/table.csv"
            )
            ov = (s["process_wall_s"] - lp["process_wall_s"]) / n
            cpu_s = s["cpu_user_s"] + s["cpu_sys_s"] + s["children_cpu_s"]
            ov_cpu = (cpu_s - lp["cpu_s"]) / n
            common = {"iterations": ov_it, "batch": ov_b, "trials": n, "cores": 1}
            rows.append(
                {
                    "measure": "snakemake",
                    **common,
                    "wall_s": s["process_wall_s"],
                    "wall_s_per_trial": s["process_wall_s"] / n,
                    "driver_cpu_s": s["cpu_user_s"] + s["cpu_sys_s"],
                    "driver_cpu_s_per_trial": (s["cpu_user_s"] + s["cpu_sys_s"]) / n,
                    "driver_maxrss_mb": s["maxrss_mb"],
                    "fit_s": s["jobs_s"],
                    "overhead_s_per_trial": ov,
                    "overhead_pct": 100.0 * ov * n / s["process_wall_s"],
                    "total_cpu_s": cpu_s,
                    "overhead_cpu_s_per_trial": ov_cpu,
                    "overhead_cpu_pct": 100.0 * ov_cpu * n / cpu_s,
                    "same_trials": same,
                }
            )
            rows.append(
                {
                    "measure": "plain_loop",
                    **common,
                    "wall_s": lp["process_wall_s"],
                    "wall_s_per_trial": lp["process_wall_s"] / n,
                    "fit_s": lp["jobs_s"],
                    "total_cpu_s": lp["cpu_s"],
                    "same_trials": same,
                }
            )
            write_csv(a.out, rows)
        for i, it in enumerate(iters):
            n = it * batch
            prof = a.profile and i == len(iters) - 1
            cfg = make_config(work / "res", f"scaling_{it}x{batch}", data, it, batch, a.lookahead)
            print(
                f"[scaling] {it} iterations x {batch} trials, lookahead {a.lookahead}, snakemake --cores {a.cores} ...",
                flush=True,
            )
            s = run_snakemake(cfg, work, cores=a.cores, profile=prof)
            cpu = s["cpu_user_s"] + s["cpu_sys_s"]
            rows.append(
                {
                    "measure": "scaling" + ("_profiled" if prof else ""),
                    "iterations": it,
                    "batch": batch,
                    "lookahead": a.lookahead,
                    "trials": n,
                    "cores": a.cores,
                    "wall_s": s["process_wall_s"],
                    "wall_s_per_trial": s["process_wall_s"] / n,
                    "driver_cpu_s": cpu,
                    "driver_cpu_s_per_trial": cpu / n,
                    "driver_maxrss_mb": s["maxrss_mb"],
                    "fit_s": s["jobs_s"],
                    "total_cpu_s": cpu + s["children_cpu_s"],
                }
            )
            write_csv(a.out, rows)
            if prof:
                import pstats

                dest = Path(a.out).with_suffix(".prof")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(s["profile"], dest)
                print(f"[scaling] driver profile of the {it}x{batch} run: {dest}")
                pstats.Stats(str(dest)).sort_stats("cumulative").print_stats(25)
            shutil.rmtree(work / "res" / cfg["run_name"], ignore_errors=True)  # keep the disk small
        if depths:
            top = max(depths) + extra
            if a.depth_base:
                given = Path(a.depth_base).resolve()
                base = make_config(given.parent, given.name, data, top, batch, a.lookahead)
                if not (given / f"iter{max(depths) - 1}" / "table.csv").exists():
                    sys.exit(f"--depth-base {given} has fewer than {max(depths)} iterations")
            else:
                base = make_config(work / "res", "depth_base", data, top, batch, a.lookahead)
                print(f"[depth] plain loop runs {max(depths)} iterations x {batch} trials ...", flush=True)
                lp = run_plain_loop(base, until=max(depths))
                rows.append(
                    {
                        "measure": "depth_base_plain_loop",
                        "iterations": max(depths),
                        "batch": batch,
                        "trials": max(depths) * batch,
                        "cores": 1,
                        "wall_s": lp["process_wall_s"],
                        "wall_s_per_trial": lp["process_wall_s"] / (max(depths) * batch),
                        "fit_s": lp["jobs_s"],
                        "total_cpu_s": lp["cpu_s"],
                    }
                )
                write_csv(a.out, rows)
            for k in sorted(depths):
                print(
                    f"[depth] snakemake continues at iteration {k} for {extra} iteration(s) x {batch} ...", flush=True
                )
                prof = a.profile and k == max(depths)
                s_ = continue_with_snakemake(base, k, extra, work, a.cores, profile=prof)
                if prof:
                    import pstats

                    dest = Path(a.out).with_suffix(".depth.prof")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(s_["profile"], dest)
                    print(f"[depth] driver profile at depth {k}: {dest}")
                    pstats.Stats(str(dest)).sort_stats("cumulative").print_stats(40)
                n = extra * batch
                cpu = s_["cpu_user_s"] + s_["cpu_sys_s"]
                rows.append(
                    {
                        "measure": "depth",
                        "iterations": k + extra,
                        "batch": batch,
                        "lookahead": a.lookahead,
                        "trials": n,
                        "depth": k,
                        "cores": a.cores,
                        "wall_s": s_["process_wall_s"],
                        "wall_s_per_trial": s_["process_wall_s"] / n,
                        "driver_cpu_s": cpu,
                        "driver_cpu_s_per_trial": cpu / n,
                        "driver_maxrss_mb": s_["maxrss_mb"],
                        "driver_cpu_s_per_iteration_running": s_.get("cpu_per_iteration"),
                        "driver_cpu_s_first_table": s_["trace"][0][1] if s_["trace"] else None,
                        "fit_s": s_["jobs_s"],
                        "total_cpu_s": cpu + s_["children_cpu_s"],
                    }
                )
                write_csv(a.out, rows)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"results kept in {work}")
    out = write_csv(a.out, rows)
    print()
    print_table(rows)
    sc = [r for r in rows if r["measure"].startswith("scaling")]
    if len(sc) >= 2:
        first, last = sc[0], sc[-1]
        ratio = last["driver_cpu_s_per_trial"] / first["driver_cpu_s_per_trial"]
        print(
            f"\ndriver CPU per trial: {first['driver_cpu_s_per_trial']:.3f} s at {first['trials']} trials, "
            f"{last['driver_cpu_s_per_trial']:.3f} s at {last['trials']} trials (x{ratio:.2f}; "
            f"1.0 = linear total cost); driver peak RSS {last['driver_maxrss_mb']:.0f} MB"
        )
    dp = [r for r in rows if r["measure"] == "depth"]
    if len(dp) >= 2:
        print(
            f"driver CPU of {extra} more iteration(s) x {batch}: "
            + ", ".join(f"{r['driver_cpu_s']:.2f} s after {r['depth']} iterations" for r in dp)
            + f"; driver peak RSS {dp[-1]['driver_maxrss_mb']:.0f} MB with {dp[-1]['iterations']} iterations in the DAG"
        )
    print(f"written {out}; took {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
