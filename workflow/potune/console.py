"""Console and log output of the rule scripts: the ``[potune]`` progress line and the
context manager that copies a script's output (and any traceback) into its rule's log file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def say(msg: str) -> None:
    """A progress line on the console (Snakemake shows a job's stdout)."""
    print(f"[potune] {msg}", flush=True)


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
