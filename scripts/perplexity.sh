#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# rabbit's quantizer against llama.cpp's, by the perplexity they leave: SmolLM2-135M-Instruct
# (the Q4_1 GGUF of scripts/fetch_smollm2.sh) dequantized into a float32 Hugging Face checkpoint,
# then quantized to each type twice:
#   rabbit:    rabbit split --dtype T of the checkpoint
#   llama.cpp: convert_hf_to_gguf.py of the checkpoint to an F32 GGUF, llama-quantize to T
#              (--pure, every tensor T, as rabbit's --dtype does; q4_k_m is llama.cpp's mixture)
# and both scored by `rabbit perplexity` on one text (tests/data/text/perplexity.txt, ~1900
# tokens, windows of 512), so that only the weights differ. The acceptance: the two within 1%.
#   scripts/perplexity.sh [TYPE...]   (default: q8_0 q4_0 q4_k q5_k q6_k q4_k_m)
# Environment: RABBIT (build/rabbit), RABBIT_PPL_DIR (work files; ~/.cache/rabbit/perplexity),
# RABBIT_PEERS and LLAMA_CPP_PYTHON (llama.cpp, as scripts/bench_cpu.sh builds it), PYTHON
# (the venv of scripts/venv.sh engine peers gguf), TEXT, CTX. Exit 1 when a pair is off by
# more than 1%.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
rabbit=${RABBIT:-$repo/build/rabbit}
work=${RABBIT_PPL_DIR:-$HOME/.cache/rabbit/perplexity}
peers=${RABBIT_PEERS:-$HOME/.cache/rabbit/peers}
src=$peers/llama_cpp_python-${LLAMA_CPP_PYTHON:-0.3.36}/vendor/llama.cpp
quantize=$src/build/bin/llama-quantize
text=${TEXT:-$repo/tests/data/text/perplexity.txt}
ctx=${CTX:-512}
py=${PYTHON:-}
[ -n "$py" ] || py=$("$here/venv.sh" engine peers gguf)/bin/python
types=("$@")
((${#types[@]})) || types=(q8_0 q4_0 q4_k q5_k q6_k q4_k_m)

die() { echo "error: $1" >&2; exit "${2:-3}"; }
[ -x "$rabbit" ] || die "$rabbit: not built (run scripts/setup.sh)" 2
[ -x "$quantize" ] || die "$quantize: not built (scripts/bench_cpu.sh builds llama.cpp; then --target llama-quantize)" 2
mkdir -p "$work"
gguf=$("$here/fetch_smollm2.sh")

# llama-quantize's name and flags for rabbit's --dtype name.
llama_type() {
  case $1 in
    q8_0) echo "Q8_0 --pure" ;; q4_0) echo "Q4_0 --pure" ;; q4_1) echo "Q4_1 --pure" ;;
    q5_0) echo "Q5_0 --pure" ;; q5_1) echo "Q5_1 --pure" ;;
    q4_k) echo "Q4_K_S --pure" ;; q5_k) echo "Q5_K_S --pure" ;; q6_k) echo "Q6_K --pure" ;;
    q4_k_m) echo "Q4_K_M" ;; q5_k_m) echo "Q5_K_M" ;;
    *) die "$1: no llama-quantize type for it" 2 ;;
  esac
}

# The float32 checkpoint and its F32 GGUF, made once.
hf=$work/smollm2-f32
if [ ! -f "$hf/model.safetensors" ]; then
  rm -rf "$hf.part"
  "$py" "$here/gguf_reference.py" "$gguf" --save-f32 "$hf.part" >&2
  mv "$hf.part" "$hf"
fi
f32gguf=$work/smollm2-F32.gguf
if [ ! -f "$f32gguf" ]; then
  PYTHONPATH=$src/gguf-py "$py" "$src/convert_hf_to_gguf.py" "$hf" --outtype f32 --outfile "$f32gguf.part" \
    >"$work/convert.log" 2>&1 || die "convert_hf_to_gguf.py failed: see $work/convert.log" 1
  mv "$f32gguf.part" "$f32gguf"
fi

# MODEL: `rabbit perplexity --json`'s line, or null when it fails (its error on stderr).
score() {
  "$rabbit" -q perplexity -m "$1" -f "$text" --ctx "$ctx" --device cpu --json || echo null
}

results=$work/results.jsonl
: >"$results"
printf '{"name": "float32 checkpoint", "r": %s}\n' "$(score "$hf")" >>"$results"
printf '{"name": "original Q4_1 GGUF", "r": %s}\n' "$(score "$gguf")" >>"$results"
for t in "${types[@]}"; do
  split=$work/split-$t
  if [ ! -f "$split/manifest.json" ]; then
    rm -rf "$split"
    # A type this rabbit cannot write leaves its row without rabbit's column, and fails it.
    "$rabbit" -q split "$hf" --dtype "$t" -o "$split" || rm -rf "$split"
  fi
  read -r ltype lflags <<<"$(llama_type "$t")"
  lg=$work/llama-$t.gguf
  if [ ! -f "$lg" ]; then
    # shellcheck disable=SC2086
    "$quantize" $lflags "$f32gguf" "$lg.part" "$ltype" "$(nproc)" >"$work/quantize-$t.log" 2>&1 ||
      die "llama-quantize $ltype failed: see $work/quantize-$t.log" 1
    mv "$lg.part" "$lg"
  fi
  r=null rb=0
  if [ -f "$split/manifest.json" ]; then
    r=$(score "$split")
    rb=$(du -sb "$split" | cut -f1)
  fi
  printf '{"name": "%s", "type": "%s", "rabbit": %s, "llama": %s, "rabbit_bytes": %s, "llama_bytes": %s}\n' \
    "$t" "$ltype $lflags" "$r" "$(score "$lg")" "$rb" "$(stat -c %s "$lg")" >>"$results"
done

"$py" - "$results" "$text" "$ctx" <<'EOF'
import json, sys
path, text, ctx = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
print(f"perplexity of SmolLM2-135M-Instruct on {text} (rabbit perplexity --ctx {ctx})")
for r in rows:
    if "r" in r and r["r"]:
        print(f"  {r['name']:24} {r['r']['perplexity']:10.4f}   ({r['r']['tokens']} tokens)")
print(f"{'type':8} {'llama-quantize':16} {'rabbit split':>12} {'llama.cpp':>10} {'ratio':>8} {'MiB r/l':>13}  within 1%")
bad = 0
for r in rows:
    if "rabbit" not in r:
        continue
    if r["rabbit"] is None or r["llama"] is None:
        bad += 1
        cells = [f"{x['perplexity']:.4f}" if x else "-" for x in (r["rabbit"], r["llama"])]
        print(f"{r['name']:8} {r['type']:16} {cells[0]:>12} {cells[1]:>10} {'-':>8} {'':13}  NO ("
              + ("rabbit split --dtype failed" if r["rabbit"] is None else "rabbit perplexity failed on llama.cpp's file")
              + ")")
        continue
    b = r["llama"]["perplexity"]
    a = r["rabbit"]["perplexity"]
    same_tokens = r["rabbit"]["text_tokens"] == r["llama"]["text_tokens"]
    ok = abs(a / b - 1) <= 0.01 and same_tokens
    bad += not ok
    print(f"{r['name']:8} {r['type']:16} {a:12.4f} {b:10.4f} {a / b:8.4f} "
          f"{r['rabbit_bytes'] / 2**20:6.1f}/{r['llama_bytes'] / 2**20:<6.1f}  {'yes' if ok else 'NO'}"
          + ("" if same_tokens else "  (the two tokenizations differ)"))
sys.exit(1 if bad else 0)
EOF
