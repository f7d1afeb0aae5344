#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment (--sdm conda), from the
# workflow's working directory. Installs nmmval from the repository the
# workflow runs from (set NMMVAL_SRC if the working directory is elsewhere).
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e "${NMMVAL_SRC:-.}"
