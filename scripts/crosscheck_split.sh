#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Splits tinystories-656k and generated models of every architecture (F32 and F16 sources,
# every --dtype) and checks each result with scripts/check_split.py, which reads the sources
# with the reference `safetensors` package. Needs build/ and the venv of scripts/venv.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rabbit=$here/../build/rabbit
gen=$here/../build/rabbit-genmodel
py=$("$here/venv.sh")/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tiny=$here/../../shared/models/tinystories-656k

for d in auto bf16 f16; do
  "$rabbit" -q split "$tiny" -o "$work/ts-$d" --dtype "$d"
  "$py" "$here/check_split.py" "$tiny" "$work/ts-$d"
done
for p in tiny-qwen2 tiny-qwen3 tiny-llama3 tiny-mistral; do
  "$gen" -p "$p" --dtype f32 --shards 2 -o "$work/$p" 2>/dev/null
  "$gen" -p "$p" --dtype f16 -o "$work/$p-f16src" 2>/dev/null
  for d in auto bf16 f16 f32; do
    "$rabbit" -q split "$work/$p" -o "$work/$p-$d" --dtype "$d" 2>/dev/null
    "$py" "$here/check_split.py" "$work/$p" "$work/$p-$d"
  done
  for d in auto keep f32; do
    "$rabbit" -q split "$work/$p-f16src" -o "$work/$p-f16src-$d" --dtype "$d" 2>/dev/null
    "$py" "$here/check_split.py" "$work/$p-f16src" "$work/$p-f16src-$d"
  done
done
echo "crosscheck: every split matches the reference reader" >&2
