"""Faults the end-to-end tests inject into a job, to check that a job killed from outside
(segfault of an in-process library, OOM killer, scheduler) becomes a recorded outcome.

``POTUNE_TEST_FAULT`` holds comma-separated ``<step>:<SIGNAL or exception>[:<trial pattern>]``,
e.g. ``validate:SIGSEGV:0-01`` makes the ``validate`` job of trial 0-01 kill itself with a
segfault; ``descriptors:SIGKILL`` kills every ``descriptors`` job; ``validate:TypeError``
raises a TypeError there (a bug of potune), ``validate:FitterError`` a failure of the fitter.
Unset (always, outside the tests), :func:`inject` does nothing.
"""

from __future__ import annotations

import fnmatch
import os
import signal


def inject(step: str, trial_id: str = "") -> None:
    """Kill this process with the signal ``POTUNE_TEST_FAULT`` names for ``step`` (and
    ``trial_id``), if any."""
    spec = os.environ.get("POTUNE_TEST_FAULT", "")
    for item in filter(None, (s.strip() for s in spec.split(","))):
        parts = item.split(":")
        if parts[0] != step or len(parts) < 2:
            continue
        if len(parts) > 2 and parts[2] and not fnmatch.fnmatchcase(str(trial_id), parts[2]):
            continue
        what = parts[1]
        if what.startswith("SIG"):
            os.kill(os.getpid(), getattr(signal, what))
        import builtins

        from . import errors

        exc = getattr(errors, what, None) or getattr(builtins, what)
        raise exc(f"injected by POTUNE_TEST_FAULT ({item})")
