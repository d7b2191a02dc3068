#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Makes (or updates) the Python virtual environment of the reference scripts, outside the
# repository: ${RABBIT_VENV:-$HOME/.cache/rabbit/venv}. Prints its path.
#   scripts/venv.sh            the reference packages (scripts/requirements-reference.txt)
#   scripts/venv.sh engine     and torch + transformers (requirements-engine.txt), for
#                              scripts/hf_reference.py
#   scripts/venv.sh peers      and what the peer benchmarks need (requirements-peers.txt)
# Groups combine; RABBIT_VENV_EXTRA may name them too. The C++ build and its tests never
# need this environment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${RABBIT_VENV:-$HOME/.cache/rabbit/venv}
reqs=(-r "$here/requirements-reference.txt")
for group in "$@" ${RABBIT_VENV_EXTRA:-}; do
  file=$here/requirements-$group.txt
  [ -f "$file" ] || { echo "venv.sh: no group '$group' (no $file)" >&2; exit 2; }
  reqs+=(-r "$file")
done
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
fi
# One resolver run over every group, so that their pins must agree.
"$venv/bin/python" -m pip install -q "${reqs[@]}" >&2
echo "$venv"
