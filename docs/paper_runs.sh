#!/bin/sh
# The runs behind docs/results.md, one after the other: the paper's sweep (config/paper.yaml),
# the high-conductance set at T = 10 s, and the finite-size runs of the lambda = 0.8 row.
# They take hours on a small machine: run them in the background, with the results and logs
# outside the repository, e.g.
#
#   nohup sh docs/paper_runs.sh ../nmmval-runs > ../nmmval-runs.log 2>&1 &
#
# The same command run again continues from the finished cells (Snakemake redoes only what is
# missing or incomplete); on a new machine it starts afresh. Each run's Snakemake log is
# OUTDIR/<run>.log, its per-job times OUTDIR/results/<run>/benchmarks/.
#
# One instance runs per OUTDIR (a second one exits at once): holding that lock, the script
# knows that no other Snakemake works in OUTDIR, so it clears the lock that a killed run
# (a logout, a lost session) leaves behind before it resumes.
set -u
OUT=${1:?usage: sh docs/paper_runs.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
exec 9> "$OUT/paper_runs.lock"
if ! flock -n 9; then
    echo "another docs/paper_runs.sh works in $OUT: not started" >&2
    exit 1
fi

run() {
    name=$1
    shift
    echo "$(date -u +%FT%TZ) start $name"
    snakemake --directory "$OUT" --unlock "$@" > /dev/null 2>&1
    if /usr/bin/time -f "$name: %e s wall, %U s user, %S s system" \
        snakemake --directory "$OUT" --keep-going --rerun-incomplete "$@" > "$OUT/$name.log" 2>&1; then
        echo "$(date -u +%FT%TZ) done $name"
    else
        echo "$(date -u +%FT%TZ) $name did not finish: see $OUT/$name.log"
    fi
}

run paper --configfile config/paper.yaml
run highg-10s --configfile config/paper-highg.yaml config/runs/highg-10s.yaml
for N in 2500 10000 40000; do
    run "finite-N$N" --configfile config/paper.yaml "config/runs/finite-N$N.yaml"
done
