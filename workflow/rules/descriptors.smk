# SNAP descriptor cache: the bispectrum matrix of a fold's training data depends only on the
# descriptor hyperparameters (rcutfac, twojmax, rfac0, rmin0, radelem, wj, quadratic), not on
# the group weights or the solver. Each distinct set is computed once, by rule `descriptors`,
# in descriptors/fold<f>/<key> (key: hash of the descriptor hyperparameters and the data);
# every trial sharing it only re-solves the weighted least squares in rule `fit`.
# For other fitters (gap) `fit_extra_inputs` returns nothing and no job of this file runs.


def _snap_cache_on():
    return FITTER == "snap" and C.get("snap", {}).get("descriptor_cache", True)


SNAP_DATA_KEY = None
if _snap_cache_on():
    from potune import snap as _snap

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
    """Extra inputs of rule `fit`: the trial's descriptor cache (snap only)."""
    if not _snap_cache_on():
        return {}
    found = _snap_proposal_key(Path(proposals_dir(wildcards.iteration)) / f"{wildcards.trial}.yaml")
    if found is None:
        return {}
    return {"descriptors": f"{R}/descriptors/fold{wildcards.fold}/{found[0]}"}


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


rule descriptors:
    input:
        train=f"{R}/split/fold{{fold}}/train.xyz",
    output:
        cache=directory(f"{R}/descriptors/fold{{fold}}/{{key}}"),
    log:
        f"{R}/logs/descriptors/fold{{fold}}/{{key}}.log",
    wildcard_constraints:
        key=r"[0-9a-f]{16}",
    params:
        spec=descriptor_spec_for_key,
    threads: RES["fit"]["threads"]
    resources:
        mem_mb=RES["fit"]["mem_mb"],
        runtime=RES["fit"]["runtime"],
    conda:
        "../../envs/snap.yaml"
    script:
        "../../scripts/descriptors.py"
