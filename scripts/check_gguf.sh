#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# rabbit against transformers on every GGUF of scripts/make_gguf_models.sh (models x types) and
# on SmolLM2-135M-Instruct's Q4_1 GGUF: a table of greedy agreement over 32 tokens and the
# largest logit difference against its tolerance (scripts/gguf_reference.py says how it is set).
#   scripts/check_gguf.sh [FILE.gguf...]   (default: the whole matrix, made first if missing)
# SmolLM2's greedy tokens must equal transformers'; every file's logits must be within the
# tolerance. Environment: RABBIT (build/rabbit), RABBIT_GGUF_DIR, PYTHON, RABBIT_DEVICE (cpu),
# JSON (a file for the full comparisons). Exit 1 when a row fails.
# The reference is transformers' own GGUF loader, except for the files it misreads, whose
# reference comes from gguf-py's dequantization of the file written as a plain float32
# checkpoint with the original config and tokenizer (gguf_reference.py --via-gguf-py auto):
#   qwen3: transformers 5.23's Qwen3 GGUF mapping drops attention.key_length, so head_dim 64
#     becomes Qwen3's default 128 and the load stops on a size mismatch;
#   tinystories: the converter writes the tied checkpoint's lm_head as output.weight and no
#     token_embd; transformers then sets tie_word_embeddings false and leaves the embedding at
#     random (and, all vocabulary scores being equal, merges its tokenizer in another order).
# One qwen2 and one llama3 file run both routes, to show that the two references agree.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
export RABBIT=${RABBIT:-$repo/build/rabbit}
dir=${RABBIT_GGUF_DIR:-$HOME/.cache/rabbit/gguf}
py=${PYTHON:-}
[ -n "$py" ] || py=$("$here/venv.sh" engine peers gguf)/bin/python
[ -x "$RABBIT" ] || { echo "error: $RABBIT: not built (run scripts/setup.sh)" >&2; exit 2; }

files=("$@")
smollm2=$("$here/fetch_smollm2.sh")
if ((${#files[@]} == 0)); then
  PYTHON=$py "$here/make_gguf_models.sh" >&2
  files=("$smollm2")
  for m in qwen2 qwen3 llama3 tinystories; do
    for t in F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_M Q4_K_M Q5_K_M Q6_K; do
      [ -f "$dir/$m/$m-$t.gguf" ] && files+=("$dir/$m/$m-$t.gguf")
    done
  done
fi
echo "$("$RABBIT" --version | head -n 1) against transformers (float32, dequantized GGUF), 32 greedy tokens" >&2
exec "$py" "$here/gguf_reference.py" "${files[@]}" --require-greedy "$smollm2" --via-gguf-py auto \
  --both-routes "$dir/qwen2/qwen2-Q4_K_M.gguf" --both-routes "$dir/llama3/llama3-Q4_K_M.gguf" ${JSON:+--json "$JSON"}
