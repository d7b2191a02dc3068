#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A long prompt on the CPU engine against transformers: the logits of its last positions,
and rabbit's peak memory against the KV cache's size plus --ram-budget.

Too slow for CI (minutes on two cores); the result goes in docs/BENCHMARKS.md.

  scripts/long_context_check.py [--gguf FILE] [--tokens 8000] [--last 8] [--ram-budget 64M]

The model is a GGUF (default: SmolLM2-135M-Instruct Q4_1, 8192 positions): transformers reads
the float32 checkpoint scripts/gguf_reference.py --save-f32 writes from it (gguf-py's
dequantization, which rabbit's matches bit for bit), and computes in float32 with PyTorch's
SDPA. The prompt is seeded random English words, tokenized by `rabbit tokenize`, the same ids
on both sides. rabbit runs twice: first without a dump, for its peak memory (the children's
largest resident set, getrusage: the tokenizer runs before it are smaller), which must stay
within the f32 KV cache of the prompt plus --ram-budget plus a fixed allowance for the
activations of one --batch part and the process itself (ALLOWANCE, below); then dumping every
prompt row's logits, of which the last --last are compared. Exit 1 when either check fails.

"""
import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_GGUF = os.path.expanduser("~/.cache/rabbit/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
ATOL, RTOL = 1e-3, 1e-3
# The process beyond its KV cache and weights: the activations of a --batch part (512 tokens:
# a few MiB for this shape), the thread pool, the tokenizer, the code: 200 MiB is ample.
ALLOWANCE = 200 << 20
WORDS = ("time river house light green small water open night story old city garden stone bird "
         "music window morning friend quiet winter road letter cold bright paper mountain dream "
         "summer child apple market bridge forest silver table voice candle ocean pocket valley "
         "lantern harbor meadow thunder whisper journey castle ribbon orchard").split()


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def prompt_of(rabbit, gguf, tokens):
    rng = random.Random(18)
    words = []
    while True:
        words += [rng.choice(WORDS) for _ in range(512)]
        text = " ".join(words)
        ids = json.loads(subprocess.run([rabbit, "-q", "tokenize", "-m", gguf, "--special", "--jsonl"],
                                        input=json.dumps(text) + "\n", capture_output=True, text=True,
                                        check=True).stdout)
        if len(ids) >= tokens:
            break
    # Cut at a word boundary near the target; tokenize again so that both sides use these ids.
    while len(ids) > tokens:
        words = words[: max(1, int(len(words) * tokens / len(ids)) - 1)]
        text = " ".join(words)
        ids = json.loads(subprocess.run([rabbit, "-q", "tokenize", "-m", gguf, "--special", "--jsonl"],
                                        input=json.dumps(text) + "\n", capture_output=True, text=True,
                                        check=True).stdout)
    return text, ids


def rabbit_run(rabbit, gguf, text, ram_budget, dump=None):
    cmd = [rabbit, "-q", "run", "-m", gguf, "--raw", "-p", text, "-n", "1", "--temp", "0", "--repeat-penalty", "1",
           "--ignore-eos", "--device", "cpu", "--kv-dtype", "f32", "--ram-budget", ram_budget]
    if dump:
        cmd += ["--dump-logits", dump]
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.time() - t0


def transformers_logits(f32_dir, ids, last):
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(f32_dir, torch_dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor([ids]), logits_to_keep=last)
    return out.logits[0].double().numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", default=DEFAULT_GGUF)
    ap.add_argument("--tokens", type=int, default=8000)
    ap.add_argument("--last", type=int, default=8)
    ap.add_argument("--ram-budget", default="64M")
    ap.add_argument("--rabbit", default=os.path.join(HERE, "..", "build-emu", "rabbit"))
    ap.add_argument("--work", default="/tmp/rabbit-long-context-check")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)

    f32_dir = os.path.join(args.work, "f32")
    if not os.path.exists(os.path.join(f32_dir, "config.json")):
        subprocess.run([sys.executable, os.path.join(HERE, "gguf_reference.py"), args.gguf, "--save-f32", f32_dir],
                       check=True)
    cfg = json.load(open(os.path.join(f32_dir, "config.json")))
    text, ids = prompt_of(args.rabbit, args.gguf, args.tokens)
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    kv_bytes = 2 * cfg["num_hidden_layers"] * cfg.get("num_key_value_heads", heads) * head_dim * 4 * len(ids)
    print(f"{args.gguf}: {len(ids)} prompt tokens; f32 KV cache {kv_bytes / 2**20:.1f} MiB")

    # The memory run first: the children's peak is the largest child's so far, and the dump
    # run holds every prompt row's logits.
    took = rabbit_run(args.rabbit, args.gguf, text, args.ram_budget)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    limit = kv_bytes + parse_size(args.ram_budget) + ALLOWANCE
    print(f"rabbit: {took:.1f} s; peak resident {peak / 2**20:.1f} MiB, limit "
          f"{limit / 2**20:.1f} MiB (KV + --ram-budget {args.ram_budget} + {ALLOWANCE >> 20} MiB)")
    dump = os.path.join(args.work, "logits.npy")
    took = rabbit_run(args.rabbit, args.gguf, text, args.ram_budget, dump)
    got = np.load(dump, mmap_mode="r")[len(ids) - args.last: len(ids)].astype(np.float64)
    os.remove(dump)
    print(f"rabbit: {took:.1f} s with the logits dumped")

    t0 = time.time()
    want = transformers_logits(f32_dir, ids, args.last)
    print(f"transformers: {time.time() - t0:.1f} s")
    if not np.all(np.isfinite(got)):
        sys.exit("rabbit's logits are not all finite")
    diff = np.abs(got - want)
    worst = float((diff / (ATOL + RTOL * np.abs(want))).max())
    rms = float(np.sqrt(np.mean(want ** 2)))
    print(f"last {args.last} positions: max |rabbit - transformers| {diff.max():.3g} (logits RMS {rms:.3f}); "
          f"{worst:.3f} of the tolerance {ATOL:g} + {RTOL:g} |x|; top tokens agree "
          f"{int((got.argmax(1) == want.argmax(1)).sum())} of {args.last}")
    ok = worst <= 1.0 and peak <= limit
    print("verdict:", "pass" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
