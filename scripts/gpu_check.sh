#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# One command for a lent GPU machine, which has the CUDA Toolkit and python3 but none of
# rabbit's Debian libraries and no network.
#
#   scripts/gpu_check.sh bundle       here: build for sm_90 (build-gpu/) and put the binaries,
#                                     the test binary and their non-CUDA shared libraries
#                                     ($ORIGIN rpath), with tinystories-656k, into gpu-bundle/
#                                     (ignored by git; carry it)
#   scripts/gpu_check.sh run [OUT]    there, in the repository's root, within 9 minutes (each step
#                                     has a time limit; together they come to 8m45s at most):
#                                     the [gpu] tests, the op table's kernel times, compute-sanitizer memcheck and racecheck on
#                                     the kernel tests, the CPU-vs-CUDA greedy comparison, and
#                                     rabbit bench on a Qwen2.5-14B-shaped model (4 layers) at a
#                                     4 GiB VRAM budget with the link rate; one summary file,
#                                     OUT/summary.md (OUT: $OUT, else gpu-check-out), beside each
#                                     step's log and bench's JSON
#   scripts/gpu_check.sh cudnn [OUT]  there, a second call (2m20s at most; its own summary):
#                                     cuDNN's fused attention against rabbit's kernel at
#                                     1K/8K/32K positions (rabbit-sdpacheck: the same outputs
#                                     within bf16 tolerance, and the times), and in the engine a
#                                     long bf16 prompt's logits with --attention cudnn and rabbit.
#                                     Needs a bundle built with cuDNN (found beside the toolkit)
#
# With the device tool: run `scripts/gpu_check.sh bundle` here, then on the machine
# `scripts/gpu_check.sh run` with carry ["gpu-bundle"] and a timeout of about 540 s, and
# `scripts/gpu_check.sh cudnn` (same carry, about 200 s) where the time allows. Each summary
# ends in "verdict: every step passed" or names what did not.
set -uo pipefail
cd "$(dirname "$0")/.."
bundle=gpu-bundle

bundle() {
  set -e
  local build=${BUILD_DIR:-build-gpu}
  # shellcheck disable=SC2016
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRABBIT_CUDA=ON -DRABBIT_CUDA_ARCHS=90 -DRABBIT_BUILD_TESTS=ON \
    -DCMAKE_BUILD_RPATH='$ORIGIN/../lib' >/dev/null
  cmake --build "$build" -j"$(nproc)" --target rabbit rabbit_tests rabbit-genmodel
  # rabbit-sdpacheck exists where CMake found cuDNN (RABBIT_CUDNN).
  if cmake --build "$build" --target help | grep -q rabbit-sdpacheck; then
    cmake --build "$build" -j"$(nproc)" --target rabbit-sdpacheck
  fi
  rm -rf "$bundle"
  mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/shared/models"
  cp "$build/rabbit" "$build/rabbit-genmodel" "$build/tests/rabbit_tests" "$bundle/bin/"
  if [ -x "$build/rabbit-sdpacheck" ]; then cp "$build/rabbit-sdpacheck" "$bundle/bin/"; fi
  # Every shared library the binaries load, but the C library's own and CUDA's (the machine
  # has its toolkit and driver): libstdc++ too, whose version the machine's may lack.
  ldd "$bundle"/bin/* | awk '/=> \// {print $1, $3}' | sort -u | while read -r name path; do
    case "$name" in
      libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libcuda.so*|libcublas*|libcudart*|libnvidia*) ;;
      *) cp -L "$path" "$bundle/lib/$name" ;;
    esac
  done
  cp -r "${RABBIT_SHARED_DIR:-../shared}/models/tinystories-656k" "$bundle/shared/models/"
  strip "$bundle"/bin/* 2>/dev/null || true
  echo "gpu_check: $bundle is $(du -sh "$bundle" | cut -f1) ($(ls "$bundle/lib" | wc -l) libraries); carry it" >&2
}

# ---- on the GPU machine --------------------------------------------------------------------

out=""
summary=""
step_status=0

note() { printf '%s\n' "$*" >>"$summary"; }

# step NAME SECONDS COMMAND...: runs it with a time limit, its output in OUT/NAME.log, and a
# line in the summary.
step() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  local took=$((SECONDS - t0))
  local verdict=passed
  [ "$rc" -eq 0 ] || verdict="FAILED (exit $rc)"
  [ "$rc" -eq 124 ] && verdict="TIMED OUT after ${limit}s"
  note "- **$name**: $verdict in ${took}s ($name.log)"
  [ "$rc" -eq 0 ] || step_status=1
  return "$rc"
}

# begin OUT: the output folder, the summary's head and the libraries' paths; false when the
# binaries cannot load.
begin() {
  out=$1
  mkdir -p "$out"
  summary=$out/summary.md
  : >"$summary"
  local here
  here=$(pwd)
  local bin=$here/$bundle/bin
  local cuda_libs=""
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do [ -d "$d" ] && cuda_libs=$cuda_libs:$d; done
  # The CUDA libraries that PyTorch's wheels carry, where the toolkit has none.
  for d in $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, s, "lib") for p in nvidia.__path__ for s in os.listdir(p)))' 2>/dev/null); do
    [ -d "$d" ] && cuda_libs=$cuda_libs:$d
  done
  export LD_LIBRARY_PATH=$here/$bundle/lib$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export RABBIT_TEST_BIN_DIR=$bin RABBIT_TEST_SOURCE_DIR=$here RABBIT_TEST_SHARED_DIR=$here/$bundle/shared
  export RABBIT_CACHE=$out/cache

  note "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  note ""
  note "- machine: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1); $(nproc) cores"
  note "- rabbit: $("$bin/rabbit" --version 2>&1 | tr '\n' ' ')"
  if ldd "$bin/rabbit" | grep -q "not found"; then
    note "- **missing libraries**: $(ldd "$bin/rabbit" | grep "not found" | tr '\n' ' ')"
    cat "$summary"
    return 1
  fi
  note ""
}

run() {
  begin "${1:-${OUT:-gpu-check-out}}" || return 1
  local here bin
  here=$(pwd)
  bin=$here/$bundle/bin

  # 1. Every [gpu] test case (the kernels, the engine against the CPU and the transformers
  #    goldens, the streaming variants, sampling, budgets, the quantized kernels and engine).
  step gpu-tests 120 "$bin/rabbit_tests" "[gpu]" --durations yes
  note "  $(grep -E '^(All tests passed|test cases:)' "$out/gpu-tests.log" | tail -1)"
  local skipped
  skipped=$(grep -c "SKIPPED:" "$out/gpu-tests.log")
  if [ "$skipped" -gt 0 ]; then
    note "  **$skipped test cases skipped**: $(grep -m1 -o 'SKIPPED:.*' "$out/gpu-tests.log")"
    step_status=1
  fi

  # The op table's kernel times per case, from CUDA events (never asserted; for the record).
  step op-timing 40 env RABBIT_OPS_TIMING=1 "$bin/rabbit_tests" "[gpu][ops]"
  # The quantized decode kernel's bandwidth on a 14336x4096 matrix (never asserted).
  step quant-timing 20 env RABBIT_OPS_TIMING=1 "$bin/rabbit_tests" "[quant][timing]"
  note "  $(grep -hoE '(q[0-9]_[0-9k]) 14336x4096, [0-9] tokens: [0-9.]+ us, [0-9.]+ GB/s' "$out/quant-timing.log" | tr '\n' ';')"

  # 2. compute-sanitizer on the kernel tests: memcheck everywhere (the quantized matvec and
  #    dequantization included), racecheck on the kernels that share memory between threads.
  export PATH=$PATH:/usr/local/cuda/bin
  if command -v compute-sanitizer >/dev/null; then
    step memcheck 60 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/rabbit_tests" \
      "gpu: rmsnorm*,gpu: qkv*,gpu: swiglu*,gpu: the embedding*,gpu: bf16*,gpu: gemm*,gpu: penalty*,gpu: argmax*,gpu: attention with a sliding window,gpu: attention reads*,quantized*,weight_product*"
    step racecheck 45 compute-sanitizer --tool racecheck --error-exitcode 9 "$bin/rabbit_tests" \
      "gpu: rmsnorm*,gpu: argmax*,gpu: attention with a sliding window,quantized launchers*"
    note "  $(grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/memcheck.log" "$out/racecheck.log" | tr '\n' ' ')"
  else
    note "- **compute-sanitizer**: not on this machine"
  fi

  # 3. The same greedy text from both engines.
  local ts=$here/$bundle/shared/models/tinystories-656k
  local prompt="Once upon a time, there was a dog named"
  step greedy-cpu 20 "$bin/rabbit" run -m "$ts" -p "$prompt" --raw -n 80 --temp 0 --device cpu
  step greedy-cuda 20 "$bin/rabbit" run -m "$ts" -p "$prompt" --raw -n 80 --temp 0 --device cuda
  # And with one ring slot at the smallest budget inspect reports: nothing can stay resident.
  local minimum
  minimum=$("$bin/rabbit" inspect "$ts" --vram-budget 1M --ring-slots 1 --ctx 512 --json 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["vram_plan"]["minimum_budget"])' 2>/dev/null)
  step greedy-cuda-streamed 20 "$bin/rabbit" run -m "$ts" -p "$prompt" --raw -n 80 --temp 0 --device cuda \
    --ring-slots 1 --ctx 512 --vram-budget "${minimum:-1}" -v
  local cpu_text cuda_text streamed_text
  cpu_text=$(grep -v -E '^(info|debug|warning):' "$out/greedy-cpu.log")
  cuda_text=$(grep -v -E '^(info|debug|warning):' "$out/greedy-cuda.log")
  streamed_text=$(grep -v -E '^(info|debug|warning):' "$out/greedy-cuda-streamed.log")
  if [ -n "$cpu_text" ] && [ "$cpu_text" = "$cuda_text" ] && [ "$cpu_text" = "$streamed_text" ]; then
    note "  greedy text: identical on the CPU, the GPU and the GPU with everything streamed"
  else
    note "  **greedy text differs** between the CPU and the GPU (greedy-*.log)"
    step_status=1
  fi

  # 4. rabbit bench on a Qwen2.5-14B-shaped model, 4 layers, at a 4 GiB budget, with the link rate.
  local model=$out/qwen14b
  mkdir -p "$model"
  step genmodel 50 "$bin/rabbit-genmodel" -p qwen2.5-14b --layers 4 --dtype bf16 -o "$model/hf" &&
    step split 30 "$bin/rabbit" split "$model/hf" -o "$model/split" &&
    step bench 100 "$bin/rabbit" bench -m "$model/split" --backend cuda --vram 4G,none --ring-slots 2,3 \
      --prompt-len 128 --gen 16 --repeat 2 --read-bytes 1G --json "$out/bench.json"
  if [ -f "$out/bench.json" ]; then
    python3 - "$out/bench.json" >>"$summary" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
b = d.get("bandwidth", {})
gb = lambda v: (v or 0) / 1e9
print("  link: pinned %.2f GB/s, pageable %.2f GB/s; shard files read warm %.2f GB/s"
      % (gb(b.get("h2d_pinned_bytes_per_second")), gb(b.get("h2d_pageable_bytes_per_second")),
         gb((b.get("read_warm") or {}).get("bytes_per_second"))))
for c in d.get("configs", []):
    what = "vram %s, %s slots" % (c.get("vram"), c.get("ring_slots"))
    if not c.get("ok"):
        print("  - %s: %s" % (what, c.get("error", "failed")))
        continue
    print("  - %s: prefill %.1f tok/s, decode %.3f tok/s, %.2f GB over the link per token, peak GPU %.2f GiB, "
          "%s of the streaming bound" % (what, c.get("prefill_tok_s") or 0, c.get("decode_tok_s") or 0,
          gb(c.get("link_bytes_per_token")), (c.get("peak_gpu_bytes") or 0) / 2**30,
          "%.0f%%" % (100 * c["bound_fraction"]) if c.get("bound_fraction") else "-"))
EOF
  fi
  rm -rf "$model"
  note ""
  note "verdict: $([ "$step_status" -eq 0 ] && echo "every step passed" || echo "SOME STEPS FAILED")"
  cat "$summary"
  return "$step_status"
}

# cuDNN's fused attention against rabbit's kernel: the kernels alone, then the engine.
cudnn() {
  begin "${1:-${OUT:-gpu-check-out}}" || return 1
  local here bin
  here=$(pwd)
  bin=$here/$bundle/bin
  if [ ! -x "$bin/rabbit-sdpacheck" ]; then
    note "- **cudnn**: this bundle was built without cuDNN (no rabbit-sdpacheck); nothing to check"
    note ""
    note "verdict: SOME STEPS FAILED"
    cat "$summary"
    return 1
  fi
  # 1. Qwen2.5-7B's attention shape, a whole prompt in one part and its last 512-token part, at
  #    1K, 8K and 32K positions; exit 1 when any output differs or cuDNN refuses a shape.
  step cudnn-sdpa 60 "$bin/rabbit-sdpacheck" --rounds 3
  grep -E 'tokens at|matches|FAIL|error' "$out/cudnn-sdpa.log" | sed 's/^/  /' >>"$summary"
  # 2. The engine: a bf16 model (Qwen2.5-0.5B's shape, 2 layers) and a prompt of over 1,000
  #    tokens (about 1,250), in parts of 512: the logits of 4 greedy steps with each attention.
  local m=$out/cudnn-model prompt
  prompt=$(python3 -c 'print(" ".join("w%d x%d" % (i % 89, i % 13) for i in range(250)))')
  mkdir -p "$m"
  step cudnn-genmodel 20 "$bin/rabbit-genmodel" -p qwen2.5-0.5b --layers 2 --dtype bf16 --seed 18 \
    --tokenizer tests/data/tokenizer/synthetic/gpt2-added -o "$m/hf" &&
    step cudnn-split 20 "$bin/rabbit" split "$m/hf" -o "$m/split" &&
    step cudnn-engine-rabbit 20 "$bin/rabbit" -v run -m "$m/split" --raw -p "$prompt" -n 4 --temp 0 --ignore-eos \
      --device cuda --attention rabbit --dump-logits "$out/logits-rabbit.npy" &&
    step cudnn-engine 20 "$bin/rabbit" -v run -m "$m/split" --raw -p "$prompt" -n 4 --temp 0 --ignore-eos \
      --device cuda --attention cudnn --dump-logits "$out/logits-cudnn.npy"
  if grep -q "prefill attention: cuDNN's fused attention" "$out/cudnn-engine.log" 2>/dev/null; then
    note "  the engine ran its prefill attention on cuDNN"
  else
    note "  **the engine did not run cuDNN's attention**: $(grep -m1 'attention' "$out/cudnn-engine.log" 2>/dev/null)"
    step_status=1
  fi
  if ! python3 - "$out/logits-rabbit.npy" "$out/logits-cudnn.npy" >>"$summary" 2>&1 <<'EOF'
import array, ast, math, sys
def last_rows(path, k=8):  # the last k rows of a float32 C-order .npy, as rabbit writes it
    with open(path, "rb") as f:
        head = f.read(10)
        n = int.from_bytes(head[8:10], "little")
        rows, cols = ast.literal_eval(f.read(n).decode())["shape"]
        k = min(k, rows)
        f.seek(10 + n + (rows - k) * cols * 4)
        a = array.array("f")
        a.frombytes(f.read(k * cols * 4))
        return rows, a
(ra, a), (rc, c) = last_rows(sys.argv[1]), last_rows(sys.argv[2])
rms = math.sqrt(sum(x * x for x in a) / len(a))
worst = max(abs(x - y) for x, y in zip(a, c)) if ra == rc and len(a) == len(c) else float("inf")
ok = ra == rc and len(a) == len(c) and all(map(math.isfinite, a + c)) and worst <= 0.05 * rms
print("  logits with cuDNN against rabbit's kernel (last 8 of %d rows): largest difference %.4g, %.2f%% of their "
      "RMS %.4g: %s" % (ra, worst, 100 * worst / rms, rms, "ok" if ok else "FAIL (over 5%)"))
sys.exit(0 if ok else 1)
EOF
  then
    note "  **the logits with cuDNN differ from rabbit's kernel's** (or were not written)"
    step_status=1
  fi
  rm -rf "$m" "$out"/logits-*.npy # every prompt row's logits: hundreds of MB
  note ""
  note "verdict: $([ "$step_status" -eq 0 ] && echo "every step passed" || echo "SOME STEPS FAILED")"
  cat "$summary"
  return "$step_status"
}

case "${1:-}" in
  bundle) bundle ;;
  run) shift; run "$@" ;;
  cudnn) shift; cudnn "$@" ;;
  *) echo "usage: scripts/gpu_check.sh bundle | run [OUT] | cudnn [OUT]" >&2; exit 2 ;;
esac
