"""Work-arounds for bugs of the pinned Snakemake (9.27.1) that potune's search loop meets.

**A retried job lost at a checkpoint.** When a job fails and has retries left, Snakemake's
scheduler puts it back among the DAG's ready jobs but leaves it in the DAG's set of running
jobs. If a checkpoint finishes before the retry starts (all cores busy, or the job rate
limit reached), Snakemake updates the DAG: it clears the ready jobs and recomputes them,
skipping every job it believes is running. The retry is never started, and with
``keep-going`` (profiles/default) Snakemake ends with exit status 0 and the search unfinished.
In potune this happens when a fit or descriptor job killed from outside (out of memory)
waits for its retry while an iteration's ``propose`` finishes. :func:`apply_fixes` makes a
retried job leave the DAG's running set, so that the update finds it ready again; and
registers a check, run when Snakemake reports success, that every job it planned has
finished, so that any other way of losing a job stops the run loudly instead of ending
quietly. Reproduced by ``tests/snakefiles/restart_after_checkpoint``.
"""

from __future__ import annotations

from typing import Any

_MARK = "_potune_keeps_retries_ready"


def keep_retried_jobs_ready() -> None:
    """Patch Snakemake's ``JobScheduler._handle_error`` (once per process): a job it
    retries is removed from the DAG's running set, where a DAG update would skip it."""
    from snakemake.scheduling.job_scheduler import JobScheduler

    original = JobScheduler._handle_error
    if getattr(original, _MARK, False):
        return

    def _handle_error(self: Any, job: Any, postprocess_job: bool = True) -> None:
        original(self, job, postprocess_job=postprocess_job)
        dag = self.workflow.dag
        if job in dag.ready_jobs:  # retried, not failed for good
            dag._running.discard(job)

    setattr(_handle_error, _MARK, True)
    JobScheduler._handle_error = _handle_error


def unfinished_jobs(dag: Any) -> list[str]:
    """The jobs Snakemake planned to run (``needrun``) that have not finished, one line each
    (rule and outputs): empty after a complete run."""
    return [
        f"{job.rule.name}: {', '.join(map(str, job.output))}" if job.output else job.rule.name
        for job in dag.needrun_jobs()
    ]


def check_all_finished(workflow: Any) -> None:
    """Raise ``WorkflowError`` naming the jobs Snakemake planned but did not run, if any
    (called when it reports success: such a run is not a finished search)."""
    from snakemake.exceptions import WorkflowError

    lost = unfinished_jobs(workflow.dag)
    if lost:
        shown = "\n".join(f"  - {line}" for line in lost[:20])
        more = f"\n  ... and {len(lost) - 20} more" if len(lost) > 20 else ""
        raise WorkflowError(
            f"potune: Snakemake reported success but {len(lost)} planned job(s) never ran "
            f"(a Snakemake scheduling bug, see potune.cluster.snakemake_fixes):\n{shown}{more}\n"
            "Every finished result is kept: run the same command again to finish the search."
        )


def apply_fixes(workflow: Any) -> None:
    """Apply :func:`keep_retried_jobs_ready` and register :func:`check_all_finished` as the
    workflow's ``onsuccess`` handler (called from the Snakefile, main process only)."""
    keep_retried_jobs_ready()
    workflow.onsuccess(lambda log=None: check_all_finished(workflow))
