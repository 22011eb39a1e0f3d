"""potune: hyperparameter optimisation of machine-learned interatomic potentials.

The science lives here as plain functions and small classes; the Snakemake rules in
``workflow/rules`` only wire them together (through the thin entry points in ``scripts/``).
"""

__version__ = "0.1.0"
