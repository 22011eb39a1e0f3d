"""One module per rule stage, each a thin function per rule: the scripts in ``scripts/``
unpack the ``snakemake`` object and call these; tests call them directly.

pandas, skopt, ase and the fitters' calculators are imported inside the steps that need them:
every job is a fresh Python process, and a fit job that imports none of them starts ~1 s
sooner (benchmarks/overhead.py).
"""
