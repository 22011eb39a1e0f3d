#!/usr/bin/env bash
# Run by Snakemake (--use-conda) after creating envs/snap.yaml: FitSNAP without its
# declared dependencies (torch, mpi4py), as the Makefile does for .venv.
set -euo pipefail
python -m pip install --no-deps fitsnap3==3.1.0.4
