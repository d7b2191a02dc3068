#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every test: installs what is missing, then
#   1. build-emu/: rabbit built against the emulated CUDA device (tests/cuda_emu), and the whole
#      Catch2 suite through ctest: the CPU tests, and every [gpu] test on the emulated device
#      with real assertions (threads in random order, then all of them again in forward and in
#      reverse order);
#   2. build-cuda/: with nvcc present, the real CUDA backend for every architecture rabbit
#      ships (sm_75 ... sm_90), compiled and linked, and checked to refuse --device cuda
#      without a GPU; with cuDNN found, its attention graph's descriptors checked by cuDNN;
#   3. build-asan/ and build-tsan/: the emulated device under ASan+UBSan (every [gpu] and
#      emulator test) and under TSan (the streams and the engine);
#   4. the tokenizer reference ids, recomputed with Hugging Face tokenizers when PyPI is reachable;
#   5. the libFuzzer targets, built with clang, each fuzzed for RABBIT_FUZZ_SECONDS (default 60).
# RABBIT_TEST_STAGES (default "emu cuda asan tsan reference fuzz") chooses the stages.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
stages=" ${RABBIT_TEST_STAGES:-emu cuda asan tsan reference fuzz} "
want() { [[ "$stages" == *" $1 "* ]]; }

scripts/setup.sh --deps-only
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# Unity batches: each batch of 8 sources is compiled as one file, so the headers (CLI11, Catch2,
# simdjson, the standard library) are parsed once per batch rather than once per source. It more
# than halves a clean build on CI's 2 cores; RABBIT_UNITY=0 compiles each source alone. File-local
# helpers therefore need names of their own (docs/ARCHITECTURE.md, "Building").
unity=()
[ "${RABBIT_UNITY:-1}" = 1 ] && unity=(-DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=8)
t0=$SECONDS
stage_done() { echo "test: $1 done at $((SECONDS - t0))s" >&2; }

if want emu; then
  # shellcheck disable=SC2086
  cmake -S . -B build-emu -DCMAKE_BUILD_TYPE=Release -DRABBIT_CUDA_EMULATOR=ON -DRABBIT_BUILD_TESTS=ON \
    "${launcher[@]}" "${unity[@]}" ${RABBIT_CMAKE_ARGS:-}
  cmake --build build-emu -j"$jobs"
  RABBIT_EMU_QUIET=1 ctest --test-dir build-emu -j"$jobs" --output-on-failure
  stage_done "the suite on the emulated device"
fi

if want cuda; then
  if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
    cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DRABBIT_CUDA=ON -DRABBIT_BUILD_TESTS=OFF "${launcher[@]}" "${unity[@]}"
    cmake --build build-cuda -j"$jobs" --target rabbit rabbit-genmodel
    # No GPU here (CI has none): --device cuda is a usage error naming itself. Where a GPU is
    # present, scripts/gpu_check.sh is the check.
    tmp=$(mktemp -d)
    build-cuda/rabbit-genmodel -p tiny-llama3 --tokenizer tests/data/tokenizer/synthetic/gpt2-added -o "$tmp/m" 2>/dev/null
    set +e
    err=$(RABBIT_CACHE=$tmp/cache build-cuda/rabbit run -m "$tmp/m" -p x -n 1 --device cuda 2>&1 >/dev/null)
    rc=$?
    set -e
    rm -rf "$tmp"
    if [ "$rc" -eq 0 ]; then
      echo "test: a GPU is usable here; the CUDA build's [gpu] tests belong to scripts/gpu_check.sh" >&2
    elif [ "$rc" -ne 2 ] || [[ "$err" != *"--device cuda"* ]]; then
      echo "test: FAILED: --device cuda without a GPU gave exit $rc: $err" >&2
      exit 1
    fi
    # cuDNN's attention graph where CMake found cuDNN: each tensor and operation descriptor
    # finalizes (cuDNN checks them without a GPU); running it is scripts/gpu_check.sh cudnn's.
    if cmake --build build-cuda --target help | grep -q rabbit-sdpacheck; then
      cmake --build build-cuda -j"$jobs" --target rabbit-sdpacheck
      for dtype in bf16 f16; do
        build-cuda/rabbit-sdpacheck --descriptors --dtype "$dtype" >/dev/null ||
          { echo "test: FAILED: cuDNN refused the attention graph's descriptors ($dtype)" >&2; exit 1; }
      done
    fi
    stage_done "the CUDA build"
  else
    echo "test: SKIPPED the CUDA build: no nvcc (the emulated device above ran the CUDA code)" >&2
  fi
fi

# The sanitizer builds are checks, not products: -O1 compiles faster and reports as well.
if want asan; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DRABBIT_CUDA_EMULATOR=ON \
    -DRABBIT_SANITIZE=address,undefined -DRABBIT_TEST_SPEC="[gpu]~[budget],[emu],[cuda-engine]~[budget],[ring]" "${launcher[@]}" "${unity[@]}"
  cmake --build build-asan -j"$jobs" --target rabbit_tests
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 RABBIT_EMU_QUIET=1 ctest --test-dir build-asan -j"$jobs" --output-on-failure
  stage_done "ASan+UBSan on the emulated device"
fi

if want tsan; then
  # Not the launch at CUDA's grid limits: its four million fiber switches, each a TSan
  # synchronisation, crash GCC 12's TSan runtime (ReleaseImpl in FiberSwitch).
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DRABBIT_CUDA_EMULATOR=ON \
    -DRABBIT_SANITIZE=thread -DRABBIT_TEST_SPEC="[streams],[ring],[emu]~[launch-limits]" "${launcher[@]}" "${unity[@]}"
  cmake --build build-tsan -j"$jobs" --target rabbit_tests
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 RABBIT_EMU_QUIET=1 ctest --test-dir build-tsan -j"$jobs" --output-on-failure
  stage_done "TSan on the emulated device"
fi

# The committed reference ids must still be what the reference implementation gives.
if want reference; then
  if venv=$(scripts/venv.sh); then
    "$venv/bin/python" scripts/tokenizer_reference.py --check
    # The chat templates are rendered through transformers' own code path, which the engine
    # group installs (scripts/venv.sh engine).
    if "$venv/bin/python" -c "import transformers" 2>/dev/null; then
      "$venv/bin/python" scripts/chat_template_reference.py --check
      "$venv/bin/python" scripts/jinja_unit_reference.py --check
    else
      echo "test: SKIPPED the chat template reference check: transformers is not in $venv (scripts/venv.sh engine)" >&2
    fi
  else
    echo "test: SKIPPED the tokenizer reference check: the reference packages could not be installed" >&2
  fi
fi

if want fuzz; then
  cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DRABBIT_FUZZ=ON \
    -DRABBIT_BUILD_TESTS=OFF -DRABBIT_CUDA=OFF -DRABBIT_FUZZ_SECONDS="${RABBIT_FUZZ_SECONDS:-60}" "${unity[@]}"
  cmake --build build-fuzz --target fuzz_safetensors fuzz_split_metadata fuzz_tokenizer fuzz_gguf fuzz_chat_template -j"$jobs"
  # Each fuzzer is one process on one core: they run side by side, as many as there are cores.
  ctest --test-dir build-fuzz -L fuzz -j"$jobs" --output-on-failure
  stage_done "the fuzzers"
fi
