#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# huggingface_hub and rabbit against the same fake hub (build/rabbit-fakehub serving
# tinystories-656k and a generated 3-shard checkpoint on 127.0.0.1): for each repo, the cache huggingface_hub's snapshot_download lays out and the
# one `rabbit pull` lays out must hold the same snapshot (same files, bytes, blob names, symlinks
# and refs/main); rabbit must run the model from huggingface_hub's cache by its hub id, and
# huggingface_hub must find rabbit's cache offline (local_files_only, as transformers does).
#   scripts/hub_cache_check.sh [BUILD_DIR]     (default build; the venv of scripts/venv.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
py=${RABBIT_VENV:-$HOME/.cache/rabbit/venv}/bin/python
model=${RABBIT_SHARED_DIR:-../shared}/models/tinystories-656k
repo=roneneldan/tinystories-656k
[ -x "$build/rabbit-fakehub" ] && [ -x "$build/rabbit-genmodel" ] || { echo "hub_cache_check: build $build/rabbit-fakehub and rabbit-genmodel first" >&2; exit 2; }
[ -f "$model/model.safetensors" ] || { echo "hub_cache_check: no $model" >&2; exit 2; }
tmp=$(mktemp -d)
hub_pid=
cleanup() { [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$build/rabbit-genmodel" -p tiny-qwen2 --shards 3 -o "$tmp/gen" >/dev/null
"$build/rabbit-fakehub" --repo "$repo=$model" --repo "acme/tiny-qwen2-sharded=$tmp/gen" >"$tmp/url" 2>"$tmp/hub.log" &
hub_pid=$!
for _ in $(seq 100); do [ -s "$tmp/url" ] && break; sleep 0.05; done
export HF_ENDPOINT=$(head -1 "$tmp/url") HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_XET=1 HF_TOKEN= HF_HOME="$tmp/home"
export RABBIT_CACHE="$tmp/rabbit"
echo "fake hub at $HF_ENDPOINT: $(cat "$tmp/hub.log")"

status=0
for r in "$repo" acme/tiny-qwen2-sharded; do
  HF_HUB_CACHE="$tmp/py" "$py" -c "import huggingface_hub as h; print('huggingface_hub', h.__version__, h.snapshot_download('$r'))" 2>/dev/null
  HF_HUB_CACHE="$tmp/rb" "$build/rabbit" -q pull "$r"
  folder=models--${r/\//--}
  (cd "$tmp/py/$folder" && find refs snapshots blobs -not -name '*.lock' | sort) >"$tmp/py.list"
  (cd "$tmp/rb/$folder" && find refs snapshots blobs | sort) >"$tmp/rb.list"
  if diff "$tmp/py.list" "$tmp/rb.list"; then echo "$r: same entries: $(wc -l <"$tmp/py.list") (refs, snapshots, blobs)"; else status=1; fi
  for f in $(cd "$tmp/py/$folder" && find refs snapshots blobs -type f -o -type l | grep -v '\.lock$'); do
    cmp -s "$tmp/py/$folder/$f" "$tmp/rb/$folder/$f" || { echo "differs: $f"; status=1; }
    if [ -L "$tmp/py/$folder/$f" ]; then
      [ "$(readlink "$tmp/py/$folder/$f")" = "$(readlink "$tmp/rb/$folder/$f")" ] || { echo "link differs: $f"; status=1; }
    fi
  done
  [ $status -eq 0 ] && echo "$r: same bytes and symlink targets"
  # rabbit resolves huggingface_hub's cache by the id.
  HF_HUB_CACHE="$tmp/py" "$build/rabbit" -q inspect "$r" >/dev/null && echo "$r: rabbit inspect finds it in huggingface_hub's cache" || status=1
done

# rabbit runs the model from huggingface_hub's cache by its id, as from the directory.
by_id=$(HF_HUB_CACHE="$tmp/py" "$build/rabbit" -q run -m "$repo" -p "Once upon a time" -n 16 --raw)
by_dir=$("$build/rabbit" -q run -m "$model" -p "Once upon a time" -n 16 --raw)
if [ "$by_id" = "$by_dir" ]; then echo "rabbit run -m $repo (huggingface_hub's cache) = run -m DIR: $by_id"; else echo "run differs"; status=1; fi

# huggingface_hub finds rabbit's download offline.
HF_HUB_CACHE="$tmp/rb" HF_HUB_OFFLINE=1 "$py" -c "
import huggingface_hub as h, transformers
p = h.snapshot_download('$repo', local_files_only=True)
t = transformers.AutoTokenizer.from_pretrained('$repo', local_files_only=True)
print('huggingface_hub offline, from rabbit pull:', p)
print('transformers tokenizer from rabbit pull:', t('Once upon a time')['input_ids'])" || status=1
[ $status -eq 0 ] && echo "hub_cache_check: OK" || echo "hub_cache_check: FAILED"
exit $status
