"""Running jobs on a laptop or a cluster: what a job asks for and the limits it sets itself
(:mod:`.resources`), running a fit program under those limits (:mod:`.runner`), a job's attempts
and what the scheduler says of them (:mod:`.attempts`), and waiting for the jobs of a killed
driver (:mod:`.resume`); work-arounds for bugs of the pinned Snakemake (:mod:`.snakemake_fixes`).
"""
