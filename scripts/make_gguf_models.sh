#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# GGUF files of every type rabbit reads, made by llama.cpp's own tools, for the acceptance
# checks (scripts/check_gguf.sh) and the benchmarks:
#   scripts/make_gguf_models.sh [MODEL...]    (default: every model below)
# Models: random-weight checkpoints with real configurations from rabbit-genmodel (Qwen2 with
# a tied embedding and biases, Qwen3 with q/k norms, Llama 3 with its RoPE scaling), all with
# Qwen3's real tokenizer; and tinystories-656k from ../shared (trained, Llama, a 2048-token
# vocabulary). Each is converted with llama.cpp's convert_hf_to_gguf.py to F32, F16, BF16 and
# Q8_0, then quantized by llama-quantize from the F32 file to Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_M
# Q4_K_M Q5_K_M Q6_K (tinystories: F32 and Q8_0 only; its rows of 128 fit no 256-block).
# The genmodel sizes are tiny but 256-aligned (hidden 256, intermediate 512, heads of 64), so
# that the k-quants apply to every matrix rather than llama-quantize's fallbacks.
# Out: $RABBIT_GGUF_DIR (default ~/.cache/rabbit/gguf)/MODEL/MODEL-TYPE.gguf, and MODEL/hf, the
# checkpoint. Files already there are kept. Prints one line per file made.
# Needs: build/rabbit-genmodel, llama.cpp built by scripts/bench_cpu.sh (RABBIT_PEERS,
# LLAMA_CPP_PYTHON), the venv of scripts/venv.sh engine peers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
genmodel=${RABBIT_GENMODEL:-$repo/build/rabbit-genmodel}
peers=${RABBIT_PEERS:-$HOME/.cache/rabbit/peers}
src=$peers/llama_cpp_python-${LLAMA_CPP_PYTHON:-0.3.36}/vendor/llama.cpp
quantize=$src/build/bin/llama-quantize
shared=${RABBIT_SHARED:-$repo/../shared}
tokenizer=${TOKENIZER:-$shared/tokenizers/qwen3}
out=${RABBIT_GGUF_DIR:-$HOME/.cache/rabbit/gguf}
py=${PYTHON:-}
[ -n "$py" ] || py=$("$here/venv.sh" engine peers)/bin/python

die() { echo "error: $1" >&2; exit "${2:-3}"; }
[ -x "$genmodel" ] || die "$genmodel: not built (run scripts/setup.sh)" 2
[ -f "$src/convert_hf_to_gguf.py" ] || die "$src/convert_hf_to_gguf.py: no llama.cpp source (run scripts/bench_cpu.sh once)" 2
[ -x "$quantize" ] || die "$quantize: not built (cmake --build $src/build --target llama-quantize)" 2

# name -> rabbit-genmodel arguments. Qwen's vocabulary (151936 rows) dominates the size: the
# embedding is tied where the architecture allows it, to halve it.
declare -A models=(
  [qwen2]="--preset tiny-qwen2 --seed 21 --hidden 256 --intermediate 512 --heads 4 --kv-heads 2 --layers 2 --vocab 151936 --tied"
  [qwen3]="--preset tiny-qwen3 --seed 22 --hidden 256 --intermediate 512 --heads 4 --kv-heads 2 --head-dim 64 --layers 2 --vocab 151936"
  [llama3]="--preset tiny-llama3 --seed 23 --hidden 256 --intermediate 512 --heads 4 --kv-heads 2 --layers 2 --vocab 151936 --max-pos 2048"
)
converted=(F32 F16 BF16 Q8_0)
quantized=(Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_M Q4_K_M Q5_K_M Q6_K)

# MODEL TYPE: convert_hf_to_gguf.py from MODEL/hf, into a .part renamed when complete.
convert() {
  local name=$1 type=$2 f=$out/$1/$1-$2.gguf
  [ -f "$f" ] && return 0
  PYTHONPATH=$src/gguf-py "$py" "$src/convert_hf_to_gguf.py" "$out/$name/hf" --outtype "${type,,}" \
    --outfile "$f.part" >"$out/$name/convert-$type.log" 2>&1 || die "convert_hf_to_gguf.py $name $type failed: see $out/$name/convert-$type.log" 1
  mv "$f.part" "$f"
  echo "$f"
}

# MODEL TYPE: llama-quantize from the F32 file.
quantize_to() {
  local name=$1 type=$2 f=$out/$1/$1-$2.gguf
  [ -f "$f" ] && return 0
  "$quantize" "$out/$name/$name-F32.gguf" "$f.part" "$type" "$(nproc)" >"$out/$name/quantize-$type.log" 2>&1 ||
    die "llama-quantize $name $type failed: see $out/$name/quantize-$type.log" 1
  mv "$f.part" "$f"
  echo "$f"
}

make_model() {
  local name=$1 t
  mkdir -p "$out/$name"
  if [ "$name" = tinystories ]; then
    [ -f "$shared/models/tinystories-656k/model.safetensors" ] || { echo "make_gguf_models: skipping tinystories: not in $shared" >&2; return 0; }
    [ -e "$out/$name/hf" ] || ln -s "$(cd "$shared/models/tinystories-656k" && pwd)" "$out/$name/hf"
    convert "$name" F32
    convert "$name" Q8_0
    return 0
  fi
  [ -n "${models[$name]:-}" ] || die "$name: no such model (expected: ${!models[*]} tinystories)" 2
  if [ ! -f "$out/$name/hf/config.json" ]; then
    [ -f "$tokenizer/tokenizer.json" ] || die "$tokenizer: no tokenizer.json (set TOKENIZER)"
    rm -rf "$out/$name/hf.part"
    # shellcheck disable=SC2086
    "$genmodel" ${models[$name]} --dtype f32 --tokenizer "$tokenizer" -o "$out/$name/hf.part" >/dev/null
    mv "$out/$name/hf.part" "$out/$name/hf"
  fi
  for t in "${converted[@]}"; do convert "$name" "$t"; done
  for t in "${quantized[@]}"; do quantize_to "$name" "$t"; done
}

names=("$@")
((${#names[@]})) || names=(qwen2 qwen3 llama3 tinystories)
for n in "${names[@]}"; do make_model "$n"; done
