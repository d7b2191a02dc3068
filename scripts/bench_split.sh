#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Measures `rabbit split` against `cp -r` of the same checkpoint on the same disk, cold page
# cache for both (scripts/drop_cache.py), each followed by a sync so that both times include
# getting the bytes onto the disk. Rounds alternate cp and split; medians are printed.
#   scripts/bench_split.sh MODEL_DIR [ROUNDS] [extra split options...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rabbit=${RABBIT:-$here/../build/rabbit}
model=${1:?usage: bench_split.sh MODEL_DIR [ROUNDS] [split options]}
rounds=${2:-5}
shift $(( $# >= 2 ? 2 : 1 ))
work=$(mktemp -d "$(dirname "$model")/bench-split.XXXXXX")
trap 'rm -rf "$work"' EXIT

bytes=$(du -sb "$model" | cut -f1)
cp_times=() split_times=() split_rss=()
for ((i = 1; i <= rounds; i++)); do
  python3 "$here/drop_cache.py" "$model"; sync
  t0=$(date +%s.%N); cp -r "$model" "$work/cp"; sync; t1=$(date +%s.%N)
  cp_times+=("$(echo "$t1 - $t0" | bc)")
  rm -rf "$work/cp"; sync

  python3 "$here/drop_cache.py" "$model"; sync
  t0=$(date +%s.%N)
  /usr/bin/time -f %M -o "$work/rss" "$rabbit" -q split "$model" -o "$work/split" "$@" 2>/dev/null
  sync; t1=$(date +%s.%N)
  split_times+=("$(echo "$t1 - $t0" | bc)")
  split_rss+=("$(cat "$work/rss")")
  out_bytes=$(du -sb "$work/split" | cut -f1)
  rm -rf "$work/split"; sync
  echo "round $i: cp ${cp_times[-1]} s, split ${split_times[-1]} s (peak RSS ${split_rss[-1]} KiB)" >&2
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
cp_med=$(median "${cp_times[@]}")
split_med=$(median "${split_times[@]}")
rss_med=$(median "${split_rss[@]}")
awk -v b="$bytes" -v ob="$out_bytes" -v c="$cp_med" -v s="$split_med" -v r="$rss_med" -v n="$rounds" 'BEGIN {
  printf "| %.2f GB in, %.2f GB out | %d | %.2f s (%.2f GB/s) | %.2f s (%.2f GB/s) | %.2f | %d MiB |\n",
         b / 1e9, ob / 1e9, n, c, b / 1e9 / c, s, b / 1e9 / s, s / c, r / 1024 }'
