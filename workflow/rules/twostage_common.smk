# Strategy two_stage (PPSO): stage-1 paths and the input functions that walk the
# `propose_descriptors` checkpoint; the extra targets of two_stage runs, kernel figures and
# the refit with forces. Rules: stage1.smk, kernel.smk.
from potune.search.twostage import is_two_stage, proxy_settings, stage1_config, stage1_objective
from potune.steps.stage1 import PROXY_RESULT

TWO_STAGE = is_two_stage(C)
C1 = stage1_config(C) if TWO_STAGE else None
S1 = f"{R}/stage1"
# stage 1's objective: kernel (kernel.json per trial, no fit) or proxy (a low-fidelity fit,
# validated: valid.json per trial, proxy.smk)
S1_RESULT = PROXY_RESULT if TWO_STAGE and stage1_objective(C) == "proxy" else "kernel.json"
PROXY_SETTINGS = proxy_settings(C)


def stage1_best_input(wildcards):
    """Stage 2's `propose` waits for stage 1's best descriptor (two_stage only)."""
    return [f"{S1}/best.yaml"] if TWO_STAGE else []


def s1_proposals_dir(iteration):
    return checkpoints.propose_descriptors.get(iteration=int(iteration)).output.proposals


def s1_previous_table(wildcards):
    it = int(wildcards.iteration)
    return [] if it == 0 else [settled(f"{S1}/iter{it - 1}/table.csv")]


def s1_iteration_results(wildcards):
    from potune.steps.propose import proposal_trials

    it = wildcards.iteration
    return [f"{S1}/iter{it}/{t}/{S1_RESULT}" for t in proposal_trials(s1_proposals_dir(it))]


def s1_loop_end():
    return walk_loop(checkpoints.propose_descriptors, checkpoints.collect_descriptors, S1, C1["stop"], C1)


def s1_final_table(wildcards):
    return f"{S1}/iter{s1_loop_end()[0]}/table.csv"


def s1_stop_info(wildcards):
    last, reason, _ = s1_loop_end()
    return {"iterations": last + 1, "reason": reason}


def extra_targets():
    """Targets beyond final_targets(): stage 1's table and plot (two_stage), and, when some
    trial succeeded, the kernel figures (GAP runs) and the refit with forces (refit_forces)."""
    targets = [extra_outcome_targets]
    if TWO_STAGE:
        targets += [f"{S1}/trials.csv", f"{S1}/best.yaml", f"{S1}/convergence.png"]
    return targets


def extra_outcome_targets(wildcards):
    if not best_found():
        return []
    targets = []
    if FITTER == "gap" and C["kernel"]["figure"]:
        targets.append(f"{R}/figures/kernel_hist.png")
    if FITTER == "gap" and C["kernel"]["similarity_curve"]:
        targets.append(f"{R}/figures/similarity.png")
    if C.get("refit_forces"):
        if C["data"].get("test"):
            targets.append(f"{R}/best/refit_comparison.csv")
        else:
            targets.append(f"{R}/best/forces/potential")
    return targets
