#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Decode ms/token on the CPU at long contexts, for a streamed Qwen2.5-7B shape (all 28 layers,
# or fewer), with the KV bytes per token.
#
#   scripts/bench_long_context.sh [--fill] [CONTEXTS] [LAYERS]   (default "1024 8192 32768", 2 layers)
#
# Each context P is a `rabbit bench` run, --ram-budget 0 (every unit read from the files for
# every token: streamed): GEN (default 8) decode steps at positions P - GEN to P - 1; the
# decode row's ms/token is the figure, and a step at context P reads P positions of the cache
# in every layer. Before the steps, either a prompt of P - GEN tokens (random ids), or with
# --fill the KV cache's first P - GEN positions filled with synthetic keys and values (`bench
# --fill-ctx`): no prefill, which at 32K takes hours on a small machine. The text decoded
# after a fill is meaningless; the step's time is the same. The model is made once: 28 layers
# of bf16 are 15 GB on disk (the Hugging Face form is removed shard by shard as it is split).
# Environment: RABBIT (default build-emu/rabbit), RABBIT_GENMODEL, DIR (default
# /tmp/rabbit-long-context), GEN, THREADS, KV_DTYPES (default f32; e.g. "f32 bf16"), WARMUP
# (default 0).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
rabbit=${RABBIT:-$repo/build-emu/rabbit}
genmodel=${RABBIT_GENMODEL:-$repo/build-emu/rabbit-genmodel}
fill=0
if [ "${1:-}" = "--fill" ]; then
  fill=1
  shift
fi
contexts=${1:-"1024 8192 32768"}
layers=${2:-2}
dir=${DIR:-/tmp/rabbit-long-context}
gen=${GEN:-8}
threads=${THREADS:-0}
kv_dtypes=${KV_DTYPES:-f32}
warmup=${WARMUP:-0}

mkdir -p "$dir"
model=$dir/qwen2.5-7b-L$layers
if [ ! -f "$model/split/manifest.json" ]; then
  mkdir -p "$model"
  "$genmodel" -p qwen2.5-7b --layers "$layers" --dtype bf16 --seed 7 --shards 16 -o "$model/hf" >/dev/null
  "$rabbit" -q split "$model/hf" -o "$model/split" --delete-original
  rm -rf "$model/hf"
fi
"$rabbit" inspect "$model/split" --ctx 32768 | grep -E "^(shape|per token|KV cache)"
for kv in $kv_dtypes; do
  for ctx in $contexts; do
    if [ "$fill" = 1 ]; then
      echo "== context $ctx, KV $kv: the cache filled with $((ctx - gen)) synthetic positions, then $gen decode steps"
      start=(--fill-ctx $((ctx - gen)))
      tag=fill
    else
      echo "== context $ctx, KV $kv: prompt $((ctx - gen)) tokens, then $gen decode steps"
      start=(--prompt-len $((ctx - gen)))
      tag=prompt
    fi
    "$rabbit" bench -m "$model/split" --backend cpu --ram-budget 0 "${start[@]}" --gen "$gen" --kv-dtype "$kv" \
      --repeat 1 --warmup "$warmup" --threads "$threads" --read-bytes 0 \
      --json "$dir/bench-$layers-$ctx-$kv-$tag.json"
  done
done
