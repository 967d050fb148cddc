#!/usr/bin/env bash
# Example batch job: refine every pose file of a folder with d3prefine, in parallel shards.
#
#   examples/batch.sh INPUT_DIR OUTPUT_DIR [SHARDS]
#   e.g.  examples/batch.sh examples/ refined/ 2
#
# Each shard I of N (0-based) refines inputs I, I+N, I+2N, ... of the same sorted file list, so
# the shards never write the same output; on a cluster, run one shard per array task instead
# (e.g. SLURM: --shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT").
# A bad input file is reported and skipped (--continue-on-error); a shard then exits with 1.
# Re-running skips nothing: add --overwrite to replace earlier outputs.
set -euo pipefail

in_dir=${1:?usage: batch.sh INPUT_DIR OUTPUT_DIR [SHARDS]}
out_dir=${2:?usage: batch.sh INPUT_DIR OUTPUT_DIR [SHARDS]}
shards=${3:-2}
mkdir -p "$out_dir"

shopt -s nullglob
inputs=("$in_dir"/*.npz "$in_dir"/*.h5)
if ((${#inputs[@]} == 0)); then
    echo "no .npz or .h5 files in $in_dir" >&2
    exit 2
fi

pids=()
for ((i = 0; i < shards; i++)); do
    d3prefine refine "${inputs[@]}" \
        --out-dir "$out_dir" --shard "$i/$shards" \
        --continue-on-error --device auto --json \
        >"$out_dir/shard$i.json" 2>"$out_dir/shard$i.log" &
    pids+=($!)
done

status=0
for ((i = 0; i < shards; i++)); do
    if ! wait "${pids[$i]}"; then
        echo "shard $i/$shards: some inputs failed, see $out_dir/shard$i.log" >&2
        status=1
    fi
done
exit "$status"
