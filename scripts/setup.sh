#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs rabbit's build dependencies (Debian 12 packages), configures and builds into build/,
# then fetches the demo's model, SmolLM2-135M-Instruct as a Q4_1 GGUF (scripts/fetch_smollm2.sh).
#   scripts/setup.sh              install what is missing, configure, build, fetch the model
#   scripts/setup.sh --deps-only  install what is missing, nothing else
#   scripts/setup.sh --no-model   install, configure and build, no download
# Exit codes: those of the build; 3 when the model cannot be fetched (no network: the build is
# complete, and `scripts/demo.sh tinystories` runs without it where ../shared is present).
# RABBIT_CMAKE_ARGS adds CMake options, e.g. "-DRABBIT_CUDA_ARCHS=90" or "-DRABBIT_CUDA=OFF".
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config git bc curl python3 python3-venv
          libcli11-dev libspdlog-dev libsimdjson-dev libxxhash-dev catch2
          libsentencepiece-dev libpcre2-dev libutf8proc-dev libedit-dev
          libcurl4-openssl-dev libssl-dev # rabbit pull: HTTP, and the hub's checksums
          clang libclang-rt-14-dev
          libopenblas-dev ccache) # the emulated CUDA device's BLAS (tests only); faster rebuilds
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "${1:-}" = "--deps-only" ] && exit 0

# shellcheck disable=SC2086
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${RABBIT_CMAKE_ARGS:-}
cmake --build build -j"$(nproc)"
echo "setup: built build/rabbit" >&2
[ "${1:-}" = "--no-model" ] && exit 0
scripts/fetch_smollm2.sh >/dev/null
