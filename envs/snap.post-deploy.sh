#!/usr/bin/env bash
# Run by Snakemake inside the new snap environment (--sdm conda): FitSNAP without its
# declared dependencies (mpi4py, torch, ...), exactly as `make venv` installs it.
set -euo pipefail
python -m pip install --no-deps fitsnap3==3.1.0.4
