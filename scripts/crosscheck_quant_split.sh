#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `rabbit split --dtype q4_k_m` of a Hugging Face checkpoint against llama.cpp's own Q4_K_M:
# a generated model is converted to an F32 GGUF (convert_hf_to_gguf.py), quantized by
# llama-quantize, and that GGUF split with --dtype keep; every unit tensor of the two splits
# must have the same type, and the script reports the bytes that differ. Two shapes: hidden
# 256 (every type applies as asked) and 576 (SmolLM2's: the row fallback).
# Usage: scripts/crosscheck_quant_split.sh LLAMA_CPP_DIR [BUILD_DIR]   (LLAMA_CPP_DIR holds
# convert_hf_to_gguf.py and build/bin/llama-quantize; the venv needs torch, transformers, gguf)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
llama=${1:?usage: $0 LLAMA_CPP_DIR [BUILD_DIR]}
build=${2:-$here/../build}
py=${PYTHON:-$("$here/venv.sh")/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tok=$here/../../shared/models/tinystories-656k # a tokenizer for the converter (vocab 2048)

check() { # name, genmodel shape arguments
  local m=$work/$1
  shift
  "$build/rabbit-genmodel" -p tiny-mistral --sliding-window 0 --vocab 2048 --dtype f32 --tokenizer "$tok" "$@" -o "$m" >/dev/null
  "$py" "$llama/convert_hf_to_gguf.py" "$m" --outtype f32 --outfile "$m-f32.gguf" >/dev/null 2>&1
  LD_LIBRARY_PATH=$llama/build/bin "$llama/build/bin/llama-quantize" "$m-f32.gguf" "$m-q4km.gguf" Q4_K_M >/dev/null 2>&1
  "$build/rabbit" -q split "$m" -o "$m-rabbit" --dtype q4_k_m
  "$build/rabbit" -q split "$m-q4km.gguf" -o "$m-llama"
  "$py" - "$m-rabbit" "$m-llama" <<'PY'
import json, sys
a_dir, b_dir = sys.argv[1], sys.argv[2]
ma, mb = (json.load(open(d + "/manifest.json")) for d in (a_dir, b_dir))
types_ok, differing, total = True, 0, 0
for ua, ub in zip(ma["units"], mb["units"]):
    fa, fb = (open(d + "/" + u["file"], "rb").read() for d, u in ((a_dir, ua), (b_dir, ub)))
    for ta, tb in zip(ua["tensors"], ub["tensors"]):
        if (ta["name"], ta["dtype"], ta["shape"]) != (tb["name"], tb["dtype"], tb["shape"]):
            print(f"{ua['name']}: rabbit {ta['name']} {ta['dtype']}, llama.cpp {tb['name']} {tb['dtype']}")
            types_ok = False
            continue
        x = fa[ua["data_offset"] + ta["offset"]:][:ta["size"]]
        y = fb[ub["data_offset"] + tb["offset"]:][:tb["size"]]
        n = sum(1 for p, q in zip(x, y) if p != q)
        if n: print(f"{ua['name']}/{ta['name']} {ta['dtype']}: {n} of {len(x)} bytes differ")
        differing += n
        total += len(x)
print(f"{a_dir}: types {'identical' if types_ok else 'DIFFER'}; {differing} of {total} bytes differ")
sys.exit(0 if types_ok else 1)
PY
}

check k256 --hidden 256 --intermediate 512 --heads 4 --kv-heads 2 --head-dim 64 --layers 8 --untied
check h576 --hidden 576 --intermediate 1536 --heads 9 --kv-heads 3 --head-dim 64 --layers 6 --tied
