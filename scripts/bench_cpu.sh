#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# rabbit's CPU engine against llama.cpp, in one run, on the same generated model and dtype.
#   scripts/bench_cpu.sh [PRESET] [ROUNDS]     (default: qwen2.5-0.5b, 5 rounds)
#   scripts/bench_cpu.sh gguf [ROUNDS]         both read the same GGUF files (rabbit run -m
#       FILE.gguf, llama-bench -m FILE.gguf) at Q8_0, Q4_0 and Q4_K_M (GGUF_TYPES), quantized
#       by llama-quantize from the F32 conversion of a ~0.5B Qwen2.5-like model whose rows
#       are 256-aligned for the k-quants (qwen2.5-0.5b with hidden 1024, intermediate 4096,
#       16 heads; 24 layers; tied vocabulary of 151936); with the weight bytes each decoded
#       token reads and the rate that makes. GGUF_LAYERS=N makes fewer layers (a quick check).
# Environment: THREADS (default: all cores), PROMPT_LEN (128), GEN (32), DTYPE (bf16), ACT_QUANT (rabbit's
# --act-quant modes, each a row: default "f32", and "f32 q8" for the GGUF preset),
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
# rabbit run --act-quant: f32 (exact, the default) and/or q8 (llama.cpp's 8-bit activations)
act_quant=${ACT_QUANT:-}
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
  cmake --build "$src/build" -j "$(nproc)" --target llama-bench llama-quantize >"$peers/build.log" 2>&1
fi

quantize=$src/build/bin/llama-quantize
mode=split
if [ "$preset" = gguf ]; then
  mode=gguf
  preset=qwen2.5-0.5b
  dtype=f32
fi
[ -n "$act_quant" ] || { [ "$mode" = gguf ] && act_quant="f32 q8" || act_quant=f32; }

# The model: a Hugging Face checkpoint, its rabbit split and its GGUF conversion.
if [ "$mode" = gguf ]; then
  layers=${GGUF_LAYERS:-24} # fewer for a quick check of the script itself
  model=$work/qwen2.5-0.5b-aligned-$layers-f32
  if [ ! -f "$model/config.json" ]; then
    "$genmodel" --preset qwen2.5-0.5b --hidden 1024 --intermediate 4096 --heads 16 --kv-heads 2 --tied \
      --layers "$layers" --dtype f32 --tokenizer "$tokenizer" -o "$model" >&2
  fi
else
  model=$work/$preset-$dtype
  if [ ! -f "$model/config.json" ]; then
    "$genmodel" --preset "$preset" --dtype "$dtype" --tokenizer "$tokenizer" -o "$model" >&2
  fi
  [ -f "$model.split/manifest.json" ] || "$rabbit" -q split "$model" -o "$model.split"
fi
if [ ! -f "$model.gguf" ]; then
  PYTHONPATH=$src/gguf-py "$py" "$src/convert_hf_to_gguf.py" "$model" --outtype "$dtype" \
    --outfile "$model.gguf.tmp" >"$work/convert.log" 2>&1
  mv "$model.gguf.tmp" "$model.gguf"
fi

# A prompt of exactly prompt_len tokens: "hello" then " hello" (one token each in Qwen's
# vocabulary, which adds no BOS); checked with rabbit tokenize.
prompt="hello$(printf ' hello%.0s' $(seq 2 "$prompt_len"))"
n_ids=$(printf '%s\n' "$prompt" | "$rabbit" tokenize -m "$model" --special | "$py" -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n_ids" = "$prompt_len" ] || { echo "the prompt is $n_ids tokens, not $prompt_len" >&2; exit 1; }

# RABBIT_MODEL GGUF LABEL: rounds that alternate the two, so that a machine whose speed drifts
# (a shared VM) treats both alike; the medians and the median of the per-round ratios are
# reported, with the weight bytes a decoded token reads (the layers' matrices and norms, the
# final norm and the lm_head; of the embedding only a row) and the rate that makes.
bench_pair() {
  local rmodel=$1 gguf=$2 label=$3 i
  run_llama() {
    "$bench" -m "$gguf" -p "$prompt_len" -n "$gen" -t "$threads" -r 1 -o jsonl 2>>"$work/llama.err"
  }
  # rabbit: -n gen+1, since the first new token comes from the prefill.
  run_rabbit() {
    "$rabbit" run -m "$rmodel" --raw -p "$prompt" -n $((gen + 1)) --ignore-eos --temp 0 --threads "$threads" \
      --act-quant "$1" 2>&1 >/dev/null | tail -n 1
  }
  local aq
  for aq in $act_quant; do
    run_rabbit "$aq" >/dev/null # warm-up (llama-bench makes its own)
    : >"$work/rabbit-$aq.txt"
  done
  : >"$work/llama.jsonl"
  for ((i = 1; i <= rounds; i++)); do
    run_llama >>"$work/llama.jsonl"
    for aq in $act_quant; do run_rabbit "$aq" >>"$work/rabbit-$aq.txt"; done
  done
  echo "llama-bench -m $gguf -p $prompt_len -n $gen -t $threads -r 1   (x$rounds)" >&2
  for aq in $act_quant; do
    echo "rabbit run -m $rmodel --raw -p <$prompt_len tokens> -n $((gen + 1)) --ignore-eos --temp 0 --threads $threads --act-quant $aq   (x$rounds)" >&2
  done
  PYTHONPATH=$src/gguf-py "$py" - "$work/llama.jsonl" "$work" "$act_quant" "$label" "$threads" "$prompt_len" "$gen" "$gguf" <<'EOF'
import json, re, statistics, sys
llama_path, work, modes, label, threads, plen, gen, gguf_path = sys.argv[1:]
llama = [json.loads(line) for line in open(llama_path) if line.strip()]
lpp = [r["avg_ts"] for r in llama if r["n_prompt"] > 0 and r["n_gen"] == 0]
ltg = [r["avg_ts"] for r in llama if r["n_gen"] > 0 and r["n_prompt"] == 0]
if not lpp or not ltg:
    sys.exit("no llama-bench rounds: ROUNDS must be at least 1")
rabbit = {}  # mode -> (prefill rates, decode rates), one per round
for mode in modes.split():
    rpp, rtg = [], []
    for line in open(f"{work}/rabbit-{mode}.txt"):
        m = re.search(r"at ([\d.]+) tok/s; \d+ generated at ([\d.]+) tok/s", line)
        if not m:
            sys.exit("unexpected rabbit stats line: " + line)
        rpp.append(float(m.group(1)))
        rtg.append(float(m.group(2)))
    rabbit[mode] = (rpp, rtg)
per_token = None
try:
    import gguf
    t = {x.name: int(x.n_bytes) for x in gguf.GGUFReader(gguf_path).tensors}
    per_token = sum(b for n, b in t.items() if n != "token_embd.weight")
    if "output.weight" not in t:
        per_token += t.get("token_embd.weight", 0)  # tied: the embedding is the lm_head
except Exception as e:  # the byte count is a note beside the rates, not a reason to fail
    print("weights read per decoded token: unknown (" + str(e) + ")")
med = statistics.median
def cell(v):
    return f"{med(v):8.1f} ({min(v):.0f}-{max(v):.0f})"
print(f"{label}, {threads} threads, prompt {plen} tokens, {gen} generated, {len(lpp)} rounds")
print(f"{'':22} {'prefill tok/s':>22} {'decode tok/s':>22}")
print(f"{'llama.cpp':22} {cell(lpp):>22} {cell(ltg):>22}")
for mode, (rpp, rtg) in rabbit.items():
    name = f"rabbit {mode}" if len(rabbit) > 1 else "rabbit"
    print(f"{name:22} {cell(rpp):>22} {cell(rtg):>22}")
    print(f"{name + ' / llama.cpp':22} {med([r / l for r, l in zip(rpp, lpp)]):22.2f} "
          f"{med([r / l for r, l in zip(rtg, ltg)]):22.2f}")
if per_token:
    rates = ", ".join(f"rabbit {m} {per_token * med(v[1]) / 1e9:.2f}" for m, v in rabbit.items())
    print(f"weights read per decoded token: {per_token / 2**20:.1f} MiB; GB/s at the decode medians: "
          f"{rates}, llama.cpp {per_token * med(ltg) / 1e9:.2f}")
print(f"llama.cpp {llama[0].get('build_commit', '?')}; {llama[0].get('cpu_info', '?')}")
EOF
}

if [ "$mode" = split ]; then
  bench_pair "$model.split" "$model.gguf" "$preset $dtype"
  exit 0
fi
[ -x "$quantize" ] || cmake --build "$src/build" -j "$(nproc)" --target llama-quantize >>"$peers/build.log" 2>&1
for t in ${GGUF_TYPES:-Q8_0 Q4_0 Q4_K_M}; do
  f=$model-$t.gguf
  if [ ! -f "$f" ]; then
    "$quantize" "$model.gguf" "$f.tmp" "$t" "$threads" >"$work/quantize-$t.log" 2>&1
    mv "$f.tmp" "$f"
  fi
  bench_pair "$f" "$f" "qwen2.5-0.5b-like (256-aligned rows, $layers layers) $t GGUF"
  echo
done
