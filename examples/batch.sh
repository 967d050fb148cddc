#!/usr/bin/env bash
# Example batch job: refine every pose file of a folder with d3prefine, in parallel shards.
#
#   examples/batch.sh INPUT_DIR OUTPUT_DIR [SHARDS] [REFINE OPTIONS...]
#   e.g.  examples/batch.sh examples/ refined/ 2
#         examples/batch.sh data/ refined/ 4 --skip-existing --steps 5 --fill 3
#
# Each shard I of N (0-based) refines inputs I, I+N, I+2N, ... of the same sorted file list, so
# the shards never write the same output. Each shard uses its share of the cores (the usable
# cores divided by SHARDS; --threads overrides it), so side-by-side shards do not oversubscribe
# them. On a cluster, run one shard per array task instead: inside a SLURM array job
# `d3prefine refine` takes its shard from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT by itself.
# Options after SHARDS go to every `d3prefine refine` as they are. A bad input file is reported
# and skipped (--continue-on-error); a shard then exits with 1. Outputs already in OUTPUT_DIR
# (*.refined.*) are never taken as inputs, even when OUTPUT_DIR is INPUT_DIR; re-run with
# --skip-existing to refine only what is missing, or --overwrite to replace everything.
# D3PREFINE overrides the command (default: d3prefine), e.g. D3PREFINE="python -m d3prefine".
set -euo pipefail

usage="usage: batch.sh INPUT_DIR OUTPUT_DIR [SHARDS] [REFINE OPTIONS...]"
in_dir=${1:?$usage}
out_dir=${2:?$usage}
shift 2
shards=2
if (($# > 0)) && [[ $1 =~ ^[0-9]+$ ]]; then
    shards=$1
    shift
fi
if ((shards < 1)); then
    echo "$usage (SHARDS >= 1)" >&2
    exit 2
fi
read -ra d3prefine <<<"${D3PREFINE:-d3prefine}"

shopt -s nullglob
inputs=("$in_dir"/*.npz "$in_dir"/*.h5 "$in_dir"/*.hdf5)
if ((${#inputs[@]} == 0)); then
    echo "no .npz or .h5 files in $in_dir" >&2
    exit 2
fi
mkdir -p "$out_dir"

pids=()
for ((i = 0; i < shards; i++)); do
    "${d3prefine[@]}" refine "$in_dir" \
        --out-dir "$out_dir" --shard "$i/$shards" \
        --continue-on-error --device auto --json "$@" \
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
