#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Decode ms/token on the CPU at long contexts, for a streamed Qwen2.5-7B shape with fewer layers
# (the disk and the time a 32K prefill takes on a small machine), with the KV bytes per token.
#
#   scripts/bench_long_context.sh [CONTEXTS] [LAYERS]     (default "1024 8192 32768", 2 layers)
#
# Each context is a `rabbit bench` run: a prompt of that many tokens (random ids), then GEN
# (default 8) decode steps, --ram-budget 0 (every unit read from the files for every token:
# streamed). The decode row's ms/token is the figure; a step at context P reads P positions of
# the cache in every layer. The per-layer part scales to the full 28 layers; the docs say how.
# Environment: RABBIT (default build-emu/rabbit), RABBIT_GENMODEL, DIR (default
# /tmp/rabbit-long-context), GEN, THREADS.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
rabbit=${RABBIT:-$repo/build-emu/rabbit}
genmodel=${RABBIT_GENMODEL:-$repo/build-emu/rabbit-genmodel}
contexts=${1:-"1024 8192 32768"}
layers=${2:-2}
dir=${DIR:-/tmp/rabbit-long-context}
gen=${GEN:-8}
threads=${THREADS:-0}

mkdir -p "$dir"
model=$dir/qwen2.5-7b-L$layers
if [ ! -f "$model/split/manifest.json" ]; then
  mkdir -p "$model"
  "$genmodel" -p qwen2.5-7b --layers "$layers" --dtype bf16 --seed 7 -o "$model/hf" >/dev/null
  "$rabbit" -q split "$model/hf" -o "$model/split"
  rm -rf "$model/hf"
fi
"$rabbit" inspect "$model/split" --ctx 32768 | grep -E "^(shape|per token|KV cache)"
for ctx in $contexts; do
  echo "== context $ctx: prompt $((ctx - gen)) tokens, then $gen decode steps"
  "$rabbit" bench -m "$model/split" --backend cpu --ram-budget 0 --prompt-len $((ctx - gen)) --gen "$gen" \
    --repeat 1 --warmup 0 --threads "$threads" --read-bytes 0 --ctx "$ctx" --json "$dir/bench-$layers-$ctx.json"
done
