#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The GPU benchmark matrix: random-weight models with real Qwen2.5 shapes, split, measured by
# `rabbit bench`, and written up as rows for docs/BENCHMARKS.md.
#
#   scripts/bench_gpu.sh [MODEL ...]        run (default: qwen2.5-7b qwen2.5-14b qwen2.5-72b:2 qwen2.5-72b:4)
#   scripts/bench_gpu.sh --report           print the Markdown of what has been measured
#
# A MODEL is a genmodel preset, with :N for N layers only. Two layer counts of the same preset
# (qwen2.5-72b:2 and :4) give the per-layer time, from which the report extrapolates the
# per-token time of the whole model (80 layers for Qwen2.5-72B): a 72B model's 145 GB do not
# fit this machine's disk, and the per-layer time is what streaming it would take.
#
# Each model is generated (bf16), split, its Hugging Face copy deleted, benchmarked and then
# deleted, so the disk holds one model at a time (Qwen2.5-14B: 29.5 GB, twice during the split).
# Results are kept: $OUT/<model>.json (rabbit bench --json) and <model>.txt (its table), so a
# session can run one model per call and report at the end.
#
# Environment:
#   RABBIT       the rabbit binary (default: build/rabbit)      GENMODEL  rabbit-genmodel
#   OUT          results (default: bench-results/ in the repository, which git ignores)
#   WORK         where models are made (default: $OUT/models)
#   BACKEND      rabbit bench --backend (default cuda)
#   VRAM         --vram list (default none,4G,8G,all: the 4-8 GB cards rabbit is for, and no cap)
#   SLOTS        --ring-slots list (default 2,3)     RAM  --ram-budget list (default 0,default)
#   PROMPT_LEN   (default 512)   GEN (default 32)   REPEAT (default 3)   WARMUP (default 1)
#   KEEP=1       keep the split models
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
rabbit=${RABBIT:-$repo/build/rabbit}
genmodel=${GENMODEL:-$(dirname "$rabbit")/rabbit-genmodel}
out=${OUT:-$repo/bench-results}
work=${WORK:-$out/models}
backend=${BACKEND:-cuda}
vram=${VRAM:-none,4G,8G,all}
slots=${SLOTS:-2,3}
ram=${RAM:-0,default}
prompt_len=${PROMPT_LEN:-512}
gen=${GEN:-32}
repeat=${REPEAT:-3}
warmup=${WARMUP:-1}
mkdir -p "$out" "$work"

report() {
  python3 - "$out" <<'EOF'
import json, os, re, sys
from collections import defaultdict
out = sys.argv[1]
runs = {}
for f in sorted(os.listdir(out)):
    if f.endswith(".json"):
        with open(os.path.join(out, f)) as fh:
            runs[f[:-5]] = json.load(fh)
if not runs:
    sys.exit("no results in " + out)
def gb(b): return "%.2f" % (b / 1e9)
def ms(s): return "%.0f" % (s * 1e3) if s >= 0.1 else "%.1f" % (s * 1e3)
first = next(iter(runs.values()))
m = first["machine"]
bw = first["bandwidth"]
print("Machine: %s; %s, %d CPUs, %.0f GiB; Linux %s; rabbit %s, %s." % (
    m["gpu"] or "no GPU", m["cpu"], m["cpus"], m["memory_bytes"] / 2**30, m["kernel"], first["rabbit"], first["date"][:10]))
line = []
if bw.get("h2d_pinned_bytes_per_second"):
    line.append("host to device %s GB/s pinned, %s GB/s pageable" % (
        gb(bw["h2d_pinned_bytes_per_second"]), gb(bw["h2d_pageable_bytes_per_second"])))
if bw.get("read_cold"):
    line.append("shard reads %s GB/s cold (%.0f%% cached before%s), %s GB/s warm" % (
        gb(bw["read_cold"]["bytes_per_second"]), 100 * bw["read_cold"]["cached_before"],
        "" if bw["read_cold_from_drive"] else ": not the drive's rate", gb(bw["read_warm"]["bytes_per_second"])))
print("Rates: " + "; ".join(line) + ".")
s = first["settings"]
print("Runs: %d-token prompt, %d decoded tokens; the run of median decode time of %d, after %d warm-up.\n" % (
    s["prompt_len"], s["gen"], s["repeat"], s["warmup"]))
print("| model | backend | slots | VRAM | RAM | prefill tok/s | decode tok/s | ms/token | weights from | disk | copy | h2d | compute | wait | overlap | bound ms | of bound | GPU peak GB | host peak GB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
# (preset, backend, slots, vram, ram) -> {layers: (seconds, bytes from the files, per token)}, for
# the rows that keep no weights anywhere: what an 80-layer model, which no memory here holds, does.
per_token = defaultdict(dict)
for name, r in runs.items():
    for c in r["configs"]:
        key = (c["backend"], c["ring_slots"], c["vram"], c["ram"])
        if not c["ok"]:
            print("| %s | %s | %s | %s | %s | failed: %s |" % ((name,) + key + (c["error"],)))
            continue
        t = c["token_s"]
        dash = "-"
        print("| %s | %s | %s | %s | %s | %.1f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, c["backend"], c["ring_slots"] or dash, c["vram"] or dash, c["ram"], c["prefill_tok_s"], c["decode_tok_s"],
            ms(t["wall"]), c["weights_from"], ms(t["disk"]), ms(t["host_copy"]), ms(t["h2d"]), ms(t["compute"]), ms(t["wait"]),
            dash if c["overlap_efficiency"] is None else "%.0f%%" % (100 * c["overlap_efficiency"]),
            dash if c["bound_s"] is None else ms(c["bound_s"]),
            dash if c["bound_fraction"] is None else "%.0f%%" % (100 * c["bound_fraction"]),
            dash if c["peak_gpu_bytes"] is None else gb(c["peak_gpu_bytes"]), gb(c["peak_host_bytes"])))
        mm = re.match(r"(.*)-(\d+)l$", name)
        if mm and c["ram"] == "0" and c["resident_bytes"] == 0:
            per_token[(mm.group(1),) + key][int(mm.group(2))] = (t["wall"], c["file_bytes_per_token"])
full = {"qwen2.5-72b": 80, "qwen2.5-32b": 64, "qwen2.5-14b": 48, "qwen2.5-7b": 28, "qwen2.5-0.5b": 24}
rows = []
for key, by_layers in sorted(per_token.items()):
    if len(by_layers) < 2 or key[0] not in full:
        continue
    (l1, (t1, b1)), (l2, (t2, b2)) = sorted(by_layers.items())[:2]
    per_layer = (t2 - t1) / (l2 - l1)
    fixed = t1 - l1 * per_layer
    n = full[key[0]]
    total = fixed + n * per_layer
    # The whole model's bytes per token would come from the drive: its cold rate bounds it.
    drive = "-"
    if bw.get("read_cold") and bw["read_cold_from_drive"]:
        bytes_all = b1 + (n - l1) * (b2 - b1) / (l2 - l1)
        drive = "%.2f" % (bytes_all / bw["read_cold"]["bytes_per_second"])
    rows.append("| %s | %s | %s | %s | %s | %s | %s | %.2f | %.3g | %s |" % (
        key[0], key[1], key[2] or "-", key[3] or "-", key[4], ms(per_layer), ms(fixed), total, 1 / total, drive))
if rows:
    print("\nExtrapolated to all %s layers, for the rows that keep no weights in VRAM or RAM (per-token time =" % "/".join(
        str(full[k[0]]) for k in per_token if k[0] in full))
    print("fixed + layers x per-layer, from the two layer counts; the weights came from the page cache here, while a")
    print("whole 72B model (145 GB) would come from the drive, whose cold rate bounds the last column):\n")
    print("| model | backend | slots | VRAM | RAM | ms/layer | fixed ms | s/token, all layers | tok/s | drive bound s/token |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
EOF
}

if [ "${1:-}" = "--report" ]; then
  report
  exit 0
fi
[ -x "$rabbit" ] || { echo "bench_gpu.sh: no rabbit binary at $rabbit (set RABBIT)" >&2; exit 2; }
[ -x "$genmodel" ] || { echo "bench_gpu.sh: no rabbit-genmodel at $genmodel (set GENMODEL)" >&2; exit 2; }

# Whatever stops the script (an error, Ctrl-C), the models it was making do not stay behind.
cleanup() { [ "${KEEP:-0}" = 1 ] || rm -rf "${hf:-}" "${split:-}"; }
trap cleanup EXIT
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(qwen2.5-7b qwen2.5-14b qwen2.5-72b:2 qwen2.5-72b:4)
for spec in "${models[@]}"; do
  preset=${spec%%:*}
  layers=
  name=$preset
  if [ "$spec" != "$preset" ]; then
    layers=${spec#*:}
    name=$preset-${layers}l
  fi
  hf=$work/$name-hf
  split=$work/$name
  if [ ! -f "$split/manifest.json" ]; then
    echo "== $name: generating and splitting" >&2
    rm -rf "$hf" "$split"
    "$genmodel" -p "$preset" --dtype bf16 ${layers:+--layers "$layers"} -o "$hf"
    "$rabbit" -q split "$hf" -o "$split"
    rm -rf "$hf"
  fi
  echo "== $name: rabbit bench" >&2
  # A configuration that fails is a row of the results (and bench's exit code): go on.
  "$rabbit" bench -m "$split" --backend "$backend" --vram "$vram" --ring-slots "$slots" --ram-budget "$ram" \
    --prompt-len "$prompt_len" --gen "$gen" --repeat "$repeat" --warmup "$warmup" --json "$out/$name.json" \
    | tee "$out/$name.txt" || echo "== $name: rabbit bench exited with ${PIPESTATUS[0]}" >&2
  [ "${KEEP:-0}" = 1 ] || rm -rf "$split"
done
report
