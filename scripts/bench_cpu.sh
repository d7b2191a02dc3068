#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# rabbit's CPU engine against llama.cpp, in one run, on the same generated model and dtype.
#   scripts/bench_cpu.sh [PRESET] [ROUNDS]     (default: qwen2.5-0.5b, 5 rounds)
# Environment: THREADS (default: all cores), PROMPT_LEN (128), GEN (32), DTYPE (bf16),
# RABBIT_BENCH_DIR (models; default ~/.cache/rabbit/bench), RABBIT_PEERS (llama.cpp build;
# default ~/.cache/rabbit/peers).
#
# llama.cpp comes from the llama-cpp-python sdist on PyPI ($LLAMA_CPP_PYTHON, default the
# release below): its vendored llama.cpp is built here with GGML_NATIVE, and
# its convert_hf_to_gguf.py turns the same Hugging Face checkpoint into GGUF at the same dtype.
# llama-bench measures prompt processing (pp) and generation (tg, from an empty context)
# after its own warm-up; rabbit's numbers are the stats line of `rabbit run` (decode after the
# prompt), after one discarded warm-up run. Both read the model through mmap from a warm
# page cache.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
rabbit=${RABBIT:-$repo/build/rabbit}
genmodel=${RABBIT_GENMODEL:-$repo/build/rabbit-genmodel}
preset=${1:-qwen2.5-0.5b}
rounds=${2:-5}
threads=${THREADS:-$(nproc)}
prompt_len=${PROMPT_LEN:-128}
gen=${GEN:-32}
dtype=${DTYPE:-bf16}
work=${RABBIT_BENCH_DIR:-$HOME/.cache/rabbit/bench}
peers=${RABBIT_PEERS:-$HOME/.cache/rabbit/peers}
tokenizer=${TOKENIZER:-$repo/../shared/tokenizers/qwen3}
mkdir -p "$work" "$peers"

venv=$("$here/venv.sh" engine peers)
py=$venv/bin/python

# llama.cpp, built once.
version=${LLAMA_CPP_PYTHON:-0.3.36} # the llama-cpp-python release whose llama.cpp is built
src=$peers/llama_cpp_python-$version/vendor/llama.cpp
bench=$src/build/bin/llama-bench
if [ ! -x "$bench" ]; then
  echo "building llama.cpp from llama-cpp-python $version into $peers" >&2
  "$py" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$peers" >&2
  tar -xzf "$peers/llama_cpp_python-$version.tar.gz" -C "$peers"
  cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF >"$peers/cmake.log" 2>&1
  cmake --build "$src/build" -j "$(nproc)" --target llama-bench >"$peers/build.log" 2>&1
fi

# The model: a Hugging Face checkpoint, its rabbit split and its GGUF conversion.
model=$work/$preset-$dtype
if [ ! -f "$model/config.json" ]; then
  "$genmodel" --preset "$preset" --dtype "$dtype" --tokenizer "$tokenizer" -o "$model" >&2
fi
[ -f "$model.split/manifest.json" ] || "$rabbit" -q split "$model" -o "$model.split"
if [ ! -f "$model.gguf" ]; then
  PYTHONPATH=$src/gguf-py "$py" "$src/convert_hf_to_gguf.py" "$model" --outtype "$dtype" \
    --outfile "$model.gguf.tmp" >"$work/convert.log" 2>&1
  mv "$model.gguf.tmp" "$model.gguf"
fi

# A prompt of exactly prompt_len tokens: "hello" then " hello" (one token each in Qwen's
# vocabulary, which adds no BOS); checked with rabbit tokenize.
prompt="hello$(printf ' hello%.0s' $(seq 2 "$prompt_len"))"
n_ids=$(printf '%s\n' "$prompt" | "$rabbit" tokenize -m "$model.split" --special | "$py" -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n_ids" = "$prompt_len" ] || { echo "the prompt is $n_ids tokens, not $prompt_len" >&2; exit 1; }

# Rounds alternate the two, so that a machine whose speed drifts (a shared VM) treats both
# alike; the medians and the median of the per-round ratios are reported.
run_llama() {
  "$bench" -m "$model.gguf" -p "$prompt_len" -n "$gen" -t "$threads" -r 1 -o jsonl 2>>"$work/llama.err"
}
# rabbit: -n gen+1, since the first new token comes from the prefill.
run_rabbit() {
  "$rabbit" run -m "$model.split" --raw -p "$prompt" -n $((gen + 1)) --ignore-eos --temp 0 --threads "$threads" \
    2>&1 >/dev/null | tail -n 1
}
run_rabbit >/dev/null # warm-up (llama-bench makes its own)
: >"$work/llama.jsonl"
: >"$work/rabbit.txt"
for ((i = 1; i <= rounds; i++)); do
  run_llama >>"$work/llama.jsonl"
  run_rabbit >>"$work/rabbit.txt"
done
echo "llama-bench -m $model.gguf -p $prompt_len -n $gen -t $threads -r 1   (x$rounds)" >&2
echo "rabbit run -m $model.split --raw -p <$prompt_len tokens> -n $((gen + 1)) --ignore-eos --temp 0 --threads $threads   (x$rounds)" >&2

"$py" - "$work/llama.jsonl" "$work/rabbit.txt" "$preset" "$dtype" "$threads" "$prompt_len" "$gen" <<'EOF'
import json, re, statistics, sys
llama_path, rabbit_path, preset, dtype, threads, plen, gen = sys.argv[1:]
llama = [json.loads(line) for line in open(llama_path) if line.strip()]
lpp = [r["avg_ts"] for r in llama if r["n_prompt"] > 0 and r["n_gen"] == 0]
ltg = [r["avg_ts"] for r in llama if r["n_gen"] > 0 and r["n_prompt"] == 0]
rpp, rtg = [], []
for line in open(rabbit_path):
    m = re.search(r"at ([\d.]+) tok/s; \d+ generated at ([\d.]+) tok/s", line)
    if not m:
        sys.exit("unexpected rabbit stats line: " + line)
    rpp.append(float(m.group(1)))
    rtg.append(float(m.group(2)))
med = statistics.median
def cell(v):
    return f"{med(v):8.1f} ({min(v):.0f}-{max(v):.0f})"
print(f"{preset} {dtype}, {threads} threads, prompt {plen} tokens, {gen} generated, {len(rpp)} rounds")
print(f"{'':14} {'prefill tok/s':>22} {'decode tok/s':>22}")
print(f"{'llama.cpp':14} {cell(lpp):>22} {cell(ltg):>22}")
print(f"{'rabbit':14} {cell(rpp):>22} {cell(rtg):>22}")
print(f"{'rabbit/llama':14} {med([r / l for r, l in zip(rpp, lpp)]):22.2f} {med([r / l for r, l in zip(rtg, ltg)]):22.2f}")
print(f"llama.cpp {llama[0].get('build_commit', '?')}; {llama[0].get('cpu_info', '?')}")
EOF
