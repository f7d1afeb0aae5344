#!/bin/sh
# The runs behind docs/results.md, one after the other: the paper's sweep (config/paper.yaml),
# the high-conductance set at T = 10 s, and the finite-size runs of the lambda = 0.8 row.
# They take hours on a small machine: run them in the background, with the results and logs
# outside the repository, e.g.
#
#   nohup sh docs/paper_runs.sh ../nmmval-runs > ../nmmval-runs.log 2>&1 &
#
# Each run goes seven cells of one lambda row at a time, and after each batch the finished
# cells are saved as parts in PARTS/<run> (default: docs/results/parts of this checkout;
# docs/run_parts.py). Only the cells that no part holds are run, so the same command
# continues on a machine that kept OUTDIR (Snakemake redoes only what is missing or
# incomplete) and, once the parts are committed, on a new machine too. A run whose cells are
# all in parts is merged into PARTS/<run>.nc, its summary cube, and its figures are drawn
# into OUTDIR/results/<run>/figures-parts (the diagnostic cells run again for their pages,
# and must give their parts' values). Each batch's Snakemake log is
# OUTDIR/<run>-p<p>-lam<lambda>.log (its first cell), its per-job times
# OUTDIR/results/<run>/benchmarks/ (kept with the parts as jobs-*.csv).
#
# One instance runs per OUTDIR (a second one exits at once): holding that lock, the script
# knows that no other Snakemake works in OUTDIR, so it clears the lock that a killed run
# (a logout, a lost session) leaves behind before it resumes.
set -u
OUT=${1:?usage: sh docs/paper_runs.sh OUTDIR [PARTS]}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
PARTS=${2:-docs/results/parts}
mkdir -p "$PARTS"
PARTS=$(cd "$PARTS" && pwd)
exec 9> "$OUT/paper_runs.lock"
if ! flock -n 9; then
    echo "another docs/paper_runs.sh works in $OUT: not started" >&2
    exit 1
fi

# run NAME CONFIGFILE...: NAME is the configs' run key
run() {
    name=$1
    shift
    echo "$(date -u +%FT%TZ) start $name"
    snakemake --directory "$OUT" --unlock --configfile "$@" > /dev/null 2>&1
    python docs/run_parts.py missing "$PARTS/$name" --configfile "$@" > "$OUT/$name.rows" || return
    while read -r targets; do
        first=${targets#*p~}  # the batch's first cell, e.g. 0.350/lam~0.600
        batch=p${first%%/*}-lam${first#*lam~}
        batch=${batch%%/*}
        # $targets unquoted: one word per target
        if /usr/bin/time -f "$name $batch: %e s wall, %U s user, %S s system" \
            snakemake $targets --directory "$OUT" --keep-going --rerun-incomplete \
            --configfile "$@" > "$OUT/$name-$batch.log" 2>&1 < /dev/null; then
            echo "$(date -u +%FT%TZ) done $name batch from $batch"
        else
            echo "$(date -u +%FT%TZ) $name batch from $batch did not finish: see $OUT/$name-$batch.log"
        fi
        python docs/run_parts.py save "$OUT/results/$name" "$PARTS/$name" < /dev/null
    done < "$OUT/$name.rows"
    python docs/run_parts.py merge "$PARTS/$name" --configfile "$@" --out "$PARTS/$name.nc" \
        || return
    echo "$(date -u +%FT%TZ) merged $name"
    # the diagnostic pages need the spectra and traces that parts do not keep: run those
    # cells here (Snakemake skips them if this machine has them) and draw every figure
    snakemake $(python docs/run_parts.py diagnostic "$PARTS/$name" --configfile "$@") \
        --directory "$OUT" --rerun-incomplete --configfile "$@" > "$OUT/$name-diagnostic.log" 2>&1 \
        < /dev/null \
        && MPLBACKEND=Agg python docs/run_parts.py figures "$PARTS/$name" --configfile "$@" \
            --results "$OUT/results/$name" --outdir "$OUT/results/$name/figures-parts" \
        && echo "$(date -u +%FT%TZ) figures of $name in $OUT/results/$name/figures-parts"
}

run paper config/paper.yaml
run highg-10s config/paper-highg.yaml config/runs/highg-10s.yaml
for N in 2500 10000 40000; do
    run "finite-N$N" config/paper.yaml "config/runs/finite-N$N.yaml"
done
