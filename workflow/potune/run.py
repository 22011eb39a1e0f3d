"""``python -m potune.run [--verbose-snakemake] [snakemake arguments ...]``: a search with
quiet, readable progress on the console.

Snakemake runs as a subprocess with the given arguments (``make run`` passes ``--cores
$(CORES) --configfile $(CONFIG) --rerun-incomplete``); its whole output is appended to
``<results_dir>/<run_name>/logs/snakemake.log`` under a header naming the command, and the
console gets the lines of :mod:`potune.progress`, read from the run folder every
:data:`POLL_S` seconds. On failure the last :data:`TAIL_LINES` lines of the log are printed
with its path, and the exit status is Snakemake's. Ctrl-C (SIGINT) and SIGTERM are forwarded
to Snakemake, which stops its jobs cleanly; the command then waits for it.
``--verbose-snakemake`` also copies Snakemake's output to the console. Plain ``snakemake``
works as before.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .console import say
from .progress import Watcher

#: seconds between two looks at the run folder
POLL_S = 2.0
#: lines of the Snakemake log printed when the run fails
TAIL_LINES = 30


def _options() -> argparse.ArgumentParser:
    """The Snakemake options that decide where the results go and how many fits run at once
    (the rest pass through untouched)."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--configfile", "--configfiles", nargs="+", default=[])
    p.add_argument("--config", "-C", nargs="+", default=[])
    p.add_argument("--cores", "-c", default=None)
    p.add_argument("--snakefile", "-s", default=None)
    p.add_argument("--directory", "-d", default=None)
    return p


def run_config(argv: list[str], cwd: str | os.PathLike = ".") -> dict:
    """The configuration the workflow will run with these Snakemake arguments: the config
    files merged in order (:func:`potune.merge.deep_merge`, as Snakemake does), then the
    ``--config key=value`` overrides, on ``config/config.yaml`` when no file gives ``data``
    (as ``workflow/rules/common.smk`` does), resolved with :func:`potune.config.resolve_config`.
    A configuration that does not resolve (the workflow will say why) gives the defaults
    merged with it, enough to find the run folder."""
    import yaml

    from .config import load_defaults, load_yaml_file, resolve_config
    from .errors import PotuneError
    from .merge import deep_merge

    opts, _ = _options().parse_known_args(argv)
    base = Path(opts.directory) if opts.directory else Path(cwd)
    raw: dict = {}
    try:
        for f in opts.configfile:
            raw = deep_merge(raw, load_yaml_file(Path(cwd) / f))
        for item in opts.config:
            key, sep, value = item.partition("=")
            if sep:
                raw[key] = yaml.safe_load(value) if value else value
        snakefile = Path(cwd) / opts.snakefile if opts.snakefile else base / "Snakefile"
        if "data" not in raw:
            raw = deep_merge(load_yaml_file(snakefile.parent / "config" / "config.yaml"), raw)
        return resolve_config(raw, check_files=False)
    except (PotuneError, yaml.YAMLError, OSError):
        return deep_merge(load_defaults(), raw)


def run_dir_of(cfg: dict, argv: list[str], cwd: str | os.PathLike = ".") -> Path:
    """``<results_dir>/<run_name>`` (relative paths from Snakemake's working directory); a
    run name that is not one safe folder name gives ``<results_dir>`` itself."""
    from .config import check_run_name
    from .errors import PotuneError

    opts, _ = _options().parse_known_args(argv)
    base = Path(cwd) / opts.directory if opts.directory else Path(cwd)
    results = base / str(cfg.get("results_dir") or "results")
    try:
        check_run_name(cfg.get("run_name"))
    except PotuneError:
        return results
    return results / cfg["run_name"]


def parallel_fits(cfg: dict, argv: list[str]) -> int:
    """How many fits run at once: the cores (``--cores``; all of them when not given or
    ``all``) over the threads of one fit."""
    opts, _ = _options().parse_known_args(argv)
    cores = os.cpu_count() or 1
    if opts.cores not in (None, "all"):
        try:
            cores = int(opts.cores)
        except ValueError:
            pass
    threads = int(((cfg.get("resources") or {}).get("fit") or {}).get("threads") or 1)
    return max(1, cores // max(threads, 1))


def watcher_for(cfg: dict, run_dir: Path, argv: list[str], start: float | None = None) -> Watcher:
    """The :class:`potune.progress.Watcher` of a search run with this configuration and these
    Snakemake arguments (folds, budget, fits at once)."""
    from .config import n_folds
    from .search.loop import trial_budget

    try:
        folds = n_folds(cfg)
    except (KeyError, TypeError, ValueError):
        folds = 1
    return Watcher(
        run_dir,
        n_folds=folds,
        budget=trial_budget(cfg),
        slots=parallel_fits(cfg, argv),
        start=time.time() if start is None else start,
    )


def tail(path: str | os.PathLike, n: int = TAIL_LINES, offset: int = 0) -> list[str]:
    """The last ``n`` lines of a text file from byte ``offset`` on (this invocation's part
    of an appended log)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        lines = fh.read().decode(errors="replace").splitlines()
    return lines[-n:]


def follow(proc: subprocess.Popen, watcher: Watcher, emit=say, poll_s: float = POLL_S) -> int:
    """Wait for ``proc``, passing the new progress lines of ``watcher`` to ``emit`` every
    ``poll_s`` seconds and once more at the end; returns its exit status."""
    while True:
        try:
            rc = proc.wait(timeout=poll_s)
            break
        except subprocess.TimeoutExpired:
            pass
        for line in watcher.poll():
            emit(line)
    for line in watcher.poll():
        emit(line)
    return rc


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose-snakemake" in argv
    argv = [a for a in argv if a != "--verbose-snakemake"]
    cfg = run_config(argv)
    run_dir = run_dir_of(cfg, argv)
    log = run_dir / "logs" / "snakemake.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    watcher = watcher_for(cfg, run_dir, argv)
    cmd = [sys.executable, "-m", "snakemake", *argv]
    env = {**os.environ, "MPLBACKEND": os.environ.get("MPLBACKEND", "Agg")}
    say(f"running {shlex.join(['snakemake', *argv])}; progress below, Snakemake's output in {log}")
    with open(log, "a") as fh:
        fh.write(f"\n=== potune.run {time.strftime('%Y-%m-%d %H:%M:%S')} in {os.getcwd()}: {shlex.join(cmd)} ===\n")
        fh.flush()
        offset = fh.tell()
        # its own process group: a Ctrl-C reaches Snakemake once, forwarded from here
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE if verbose else fh,
            stderr=subprocess.STDOUT,
            env=env,
            process_group=0,
            # a shell starts background commands with SIGINT ignored, and Snakemake would
            # inherit that: it must stop on the SIGINT forwarded below
            preexec_fn=_default_sigint,
            text=verbose,
        )
        copier = None
        if verbose:

            def copy_out() -> None:
                for line in proc.stdout:
                    fh.write(line)
                    sys.stdout.write(line)
                fh.flush()

            copier = threading.Thread(target=copy_out, daemon=True)
            copier.start()

        stopped = []

        def forward(signum, _frame) -> None:
            stopped.append(signum)
            if proc.poll() is None:
                proc.send_signal(signum)
                say("stopping Snakemake (it ends its running jobs; run the same command again to resume) ...")

        old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            rc = follow(proc, watcher)
            if copier is not None:
                copier.join(timeout=10)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
    if rc != 0 and stopped:
        say(f"stopped on request (Snakemake exit {rc}); run the same command again to resume; log: {log}")
        return rc
    if rc != 0:
        say(f"Snakemake failed (exit {rc}); the last lines of its log {log}:")
        for line in tail(log, offset=offset):
            print(f"    {line}", flush=True)
        say(f"full log: {log}")
        return rc
    for line in watcher.final_lines(log):
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
