#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The accuracy cost of each --kv-dtype: greedy decoding with the KV cache in bf16, f16 and
q8_0 against the f32 cache, on the CPU engine.

For each type: the largest logit difference from the f32 run over the steps whose context is
still the same (up to and including the first step where the greedy token differs), that
difference relative to the logits' RMS, and how many of the greedy tokens agree before the
first difference.

  scripts/kv_dtype_accuracy.py --model DIR_OR_GGUF [--prompt TEXT] [-n 128] [--rabbit build-emu/rabbit]

"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np


def run(rabbit, model, prompt, n, kv, out, device):
    cmd = [rabbit, "-q", "run", "-m", model, "-p", prompt, "-n", str(n), "--temp", "0", "--ignore-eos",
           "--device", device, "--kv-dtype", kv, "--dump-logits", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return np.load(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", default="Once upon a time, in a small village by the sea, there lived")
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--rabbit", default="build-emu/rabbit")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ref = run(args.rabbit, args.model, args.prompt, args.n, "f32", os.path.join(tmp, "f32.npy"), args.device)
        print(f"model {args.model}: {len(ref) - args.n + 1} prompt tokens, {args.n} greedy tokens, "
              f"logits RMS {np.sqrt(np.mean(ref ** 2)):.3f}")
        print(f"{'kv-dtype':<8} {'max |dlogit|':>12} {'/ RMS':>8} {'greedy agreement':>18}")
        for kv in ("bf16", "f16", "q8_0"):
            got = run(args.rabbit, args.model, args.prompt, args.n, kv, os.path.join(tmp, kv + ".npy"), args.device)
            if not np.all(np.isfinite(got)):
                sys.exit(f"{kv}: non-finite logits")
            if got.shape != ref.shape:
                sys.exit(f"{kv}: {got.shape} logits, not {ref.shape}")
            # The rows: every prompt position, then one per generated token but the last; the
            # last n rows are the n greedy choices.
            first = len(ref) - args.n
            same = ref[first:].argmax(1) == got[first:].argmax(1)
            agree = int(np.argmin(same)) if not same.all() else args.n
            rows = first + min(agree + 1, args.n)  # the same context up to and including the first difference
            err = float(np.abs(got[:rows] - ref[:rows]).max())
            rms = float(np.sqrt(np.mean(ref[:rows] ** 2)))
            print(f"{kv:<8} {err:>12.4g} {err / rms:>8.2%} {agree:>8} of {args.n}")


if __name__ == "__main__":
    main()
