#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# rabbit's Python layer-streaming peers (RabbitLLM, AirLLM, HF accelerate's device_map offload)
# on one model and budget; see scripts/bench_peers.py for what is measured and how.
#   scripts/bench_peers.sh MODEL_DIR [--peers rabbitllm,airllm,accelerate] [--prompt-len 512]
#       [--gen 32] [--repeat 3] [--device cpu|cuda] [--max-vram 4G] [--max-ram SIZE|none]
#       [--dtype auto|bf16|fp16|fp32] [--threads N] [--cache-dir DIR] [--json FILE]
# e.g. scripts/bench_peers.sh ~/.cache/rabbit/bench/qwen2.5-0.5b-bf16 --prompt-len 128 \
#        --json ~/.cache/rabbit/bench/peers.jsonl
#
# The venv: ${RABBIT_VENV:-~/.cache/rabbit/venv-offload}, made on first use as
#   RABBIT_VENV=~/.cache/rabbit/venv-offload scripts/venv.sh engine offload
#   ~/.cache/rabbit/venv-offload/bin/python -m pip install --no-deps rabbitllm==1.1.0
# It is a venv of its own because rabbitllm 1.1.0 declares torch<2.6 and transformers<5.3, which
# cannot resolve against requirements-engine.txt; it runs on torch 2.15/transformers 5.23 when
# installed without its pins (bench_peers.py drives its forward(), not its generate()).
# PYTHON=python3 skips the venv (a machine where the packages are already importable, e.g. via
# PYTHONPATH).
#
# GPU machine with no network (torch + transformers preinstalled, python3 3.12):
#   here, in the repo root (.whl/ is in .gitignore; carry it with the run tool):
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
#       -d .whl airllm==4.0.0 rabbitllm==1.1.0 bitsandbytes==0.50.2      # ~43 MB, bnb mostly
#     (for a machine that lacks the others too: pip download -d WHEELHOUSE
#      -r scripts/requirements-offload.txt, plus rabbitllm==1.1.0 --no-deps; no torch needed)
#   there:
#     python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
#     PYTHONPATH=/tmp/site PYTHON=python3 scripts/bench_peers.sh MODEL --device cuda --max-vram 4G
#   The model must exist there (1 GB does not travel): build/rabbit-genmodel makes it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rabbitllm_pin=${RABBITLLM_PIN:-rabbitllm==1.1.0}
if [ -n "${PYTHON:-}" ]; then
  py=$PYTHON
else
  venv=${RABBIT_VENV:-$HOME/.cache/rabbit/venv-offload}
  if ! "$venv/bin/python" -c 'import airllm, rabbitllm, accelerate' >/dev/null 2>&1; then
    echo "bench_peers: making $venv" >&2
    RABBIT_VENV=$venv "$here/venv.sh" engine offload >/dev/null
    "$venv/bin/python" -m pip install -q --no-deps "$rabbitllm_pin" >&2
  fi
  py=$venv/bin/python
fi
exec "$py" "$here/bench_peers.py" "$@"
