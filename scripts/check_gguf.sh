#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# rabbit against transformers on every GGUF of scripts/make_gguf_models.sh (models x types) and
# on SmolLM2-135M-Instruct's Q4_1 GGUF: a table of greedy agreement over 32 tokens and the
# largest logit difference against its tolerance (scripts/gguf_reference.py says how it is set).
#   scripts/check_gguf.sh [FILE.gguf...]   (default: the whole matrix, made first if missing)
# SmolLM2's greedy tokens must equal transformers'; every file's logits must be within the
# tolerance. Environment: RABBIT (build/rabbit), RABBIT_GGUF_DIR, PYTHON, RABBIT_DEVICE (cpu),
# JSON (a file for the full comparisons). Exit 1 when a row fails.
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
exec "$py" "$here/gguf_reference.py" "${files[@]}" --require-greedy "$smollm2" ${JSON:+--json "$JSON"}
