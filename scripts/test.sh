#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every test: installs what is missing, builds, runs the Catch2 suite through ctest (GPU
# tests are skipped, visibly, without a GPU); recomputes the tokenizer reference ids with
# Hugging Face tokenizers when PyPI is reachable; then builds the libFuzzer targets with clang
# and fuzzes each for RABBIT_FUZZ_SECONDS (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/setup.sh --deps-only
# shellcheck disable=SC2086
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRABBIT_BUILD_TESTS=ON ${RABBIT_CMAKE_ARGS:-}
cmake --build build -j"$jobs"
ctest --test-dir build -j"$jobs" --output-on-failure

# The committed reference ids must still be what the reference implementation gives.
if venv=$(scripts/venv.sh); then
  "$venv/bin/python" scripts/tokenizer_reference.py --check
else
  echo "test: SKIPPED the tokenizer reference check: the reference packages could not be installed" >&2
fi

cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DRABBIT_FUZZ=ON \
  -DRABBIT_BUILD_TESTS=OFF -DRABBIT_CUDA=OFF -DRABBIT_FUZZ_SECONDS="${RABBIT_FUZZ_SECONDS:-60}"
cmake --build build-fuzz --target fuzz_safetensors fuzz_split_metadata fuzz_tokenizer -j"$jobs"
ctest --test-dir build-fuzz -L fuzz --output-on-failure
