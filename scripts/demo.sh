#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The README's first command, after setup.sh: a real trained model answers a real question.
#   scripts/demo.sh              SmolLM2-135M-Instruct (Q4_1 GGUF, fetched by scripts/setup.sh,
#                                else now): "What is the capital of France?", greedy, in the
#                                chat format of the GGUF's template
#   scripts/demo.sh tinystories  TinyStories-656K (f32 Llama): 60 greedy tokens of a story
#   scripts/demo.sh MODEL        any model (GGUF file, split or Hugging Face directory) asked
#                                the same question
# TinyStories-656K comes from ../shared/models/tinystories-656k beside the repository (where
# the project's machines keep it), else is downloaded once from the Hugging Face hub into
# ${XDG_CACHE_HOME:-~/.cache}/rabbit/models/; RABBIT_DEMO_URL replaces the hub's address (a
# mirror, or file:// for a local copy). Exit codes: rabbit's; 2 not built; 3 no model and no
# network to fetch it.
set -euo pipefail
cd "$(dirname "$0")/.."

# The bare question puts SmolLM2's first token on a near tie ("The" 0.08 logits over "L" in
# float32) that 8-bit activations tip into French; asked for one sentence, it answers plainly.
question="What is the capital of France?"
prompt="Once upon a time, there was a dog named"
rabbit=build/rabbit
[ -x "$rabbit" ] || { echo "error: $rabbit: not built (run scripts/setup.sh first)" >&2; exit 2; }

# The copy rabbit's goldens were computed on (docs: ../shared/models/tinystories-656k/GOLDEN.md).
declare -A sha256=(
  [config.json]=5d34a34a12acbd8b0d4d8b400cb4ad72e6cdd49673d4b27b5b4c4e93030bc7ee
  [model.safetensors]=187d0d5e8360d9625e40e0b35ec57d1ef0eea1a60ddcf09412246bed3484852f
  [tokenizer.json]=9a7917d490ac034a4e69eb081096226971887e9e66b0969355421613f62b12e7
  [tokenizer_config.json]=b41898ab69aa46f6bd13416e9662542e056d0727d565bac0e6552efc08438809
  [generation_config.json]=e7837bdba54a36255e4328e034076648ed8a8ca617d7a979a29158191cce6318
  [special_tokens_map.json]=e530a890d28bf0c1e0dfc61b480231d59501cbd3d177ec82bf74547110239175
)
required=(config.json model.safetensors tokenizer.json)
optional=(tokenizer_config.json generation_config.json special_tokens_map.json)

# Downloads the model into DIR, whole or not at all: into DIR.part, renamed once complete.
fetch() {
  local dir=$1 url=${RABBIT_DEMO_URL:-https://huggingface.co/raincandy-u/TinyStories-656K/resolve/main}
  command -v curl >/dev/null || { echo "error: curl: not installed (scripts/setup.sh installs it)" >&2; exit 2; }
  local part=$dir.part
  rm -rf "$part"
  mkdir -p "$part"
  echo "demo: downloading TinyStories-656K from $url into $dir" >&2
  local f
  for f in "${required[@]}"; do
    if ! curl -fsL --retry 2 -o "$part/$f" "$url/$f"; then
      rm -rf "$part"
      echo "error: $url/$f: cannot download it (no network? set RABBIT_DEMO_URL, or pass a model directory)" >&2
      exit 3
    fi
  done
  for f in "${optional[@]}"; do
    curl -fsSL --retry 2 -o "$part/$f" "$url/$f" 2>/dev/null || rm -f "$part/$f"
  done
  for f in "${required[@]}" "${optional[@]}"; do
    [ -f "$part/$f" ] || continue
    if [ "$(sha256sum "$part/$f" | cut -d' ' -f1)" != "${sha256[$f]}" ]; then
      echo "demo: warning: $f differs from the copy rabbit's goldens were computed on; the text may differ" >&2
    fi
  done
  rm -rf "$dir"
  mv "$part" "$dir"
}

case "${1:-}" in
  "")
    model=$(scripts/fetch_smollm2.sh)
    exec "$rabbit" run -m "$model" -p "$question" -n 128 --temp 0
    ;;
  tinystories)
    if [ -f ../shared/models/tinystories-656k/model.safetensors ]; then
      model=../shared/models/tinystories-656k
    else
      model=${XDG_CACHE_HOME:-$HOME/.cache}/rabbit/models/tinystories-656k
      [ -f "$model/model.safetensors" ] || fetch "$model"
    fi
    exec "$rabbit" run -m "$model" -p "$prompt" -n 60 --temp 0
    ;;
  *)
    exec "$rabbit" run -m "$1" -p "$question" -n 128 --temp 0
    ;;
esac
