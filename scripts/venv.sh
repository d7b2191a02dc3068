#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Makes (or updates) the Python virtual environment of the reference scripts, outside the
# repository: ${RABBIT_VENV:-$HOME/.cache/rabbit/venv}. Prints its path.
#   scripts/venv.sh            the reference packages (scripts/requirements-reference.txt)
# The C++ build and its tests never need it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${RABBIT_VENV:-$HOME/.cache/rabbit/venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
fi
"$venv/bin/python" -m pip install -q -r "$here/requirements-reference.txt" >&2
echo "$venv"
