#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# What quantizing the activations to 8-bit blocks costs (the CPU's quantized products, see
# src/backend/cpu/qkernels.h): the relative RMS error of y = x W^T with x rounded by that rule,
# against f32 x, both with the same dequantized weights (gguf-py's), so that only the
# activations' rounding differs. The kernels equal the rounded product to f32 rounding
# (tests/test_cpu_quant.cpp), so this is their error.
#   q8_error.py [GGUF ...]
# Random: uniform and Gaussian x against random weights (of the 32- and 256-element blocks).
# Real: each GGUF's first layer of every type, x the first layer's real inputs: for q/k/v/gate/
# up the RMS-normed embeddings of 64 token ids, for down the SwiGLU of those through the
# layer's gate and up (attention left out).
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def quantize_q8(x, block):
    """The rule of qkernels.h: d = max|x| / 127, q = nearest-even(x * (1 / d)), in f32."""
    b = x.astype(np.float32).reshape(x.shape[0], -1, block)
    amax = np.abs(b).max(axis=-1, keepdims=True)
    d = np.where(amax >= np.float32(1e-30), amax / np.float32(127), np.float32(0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    q = np.rint(b * inv).astype(np.float32)  # rint rounds half to even
    return (q * d).reshape(x.shape)


def rel_error(x, w, block):
    exact = x.astype(np.float64) @ w.astype(np.float64).T
    got = quantize_q8(x, block).astype(np.float64) @ w.astype(np.float64).T
    return float(np.sqrt(((got - exact) ** 2).sum() / (exact ** 2).sum()))


def rmsnorm(x, weight, eps=1e-5):
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * weight


def random_rows(rng):
    w = rng.standard_normal((256, 1536)).astype(np.float32)
    for name, x in (("uniform", rng.uniform(-1, 1, (64, 1536))), ("gaussian", rng.standard_normal((64, 1536)))):
        print(f"random {name:8}: block 32 {rel_error(x, w, 32):.4%}, block 256 {rel_error(x, w, 256):.4%}")


def real_rows(path, rng, seen):
    r = GGUFReader(path)
    t = {x.name: x for x in r.tensors}

    def deq(name):
        x = t[name]
        return dequantize(x.data, x.tensor_type).reshape(-1, int(x.shape[0])).astype(np.float32)

    ids = rng.integers(100, 20000, 64)
    x = rmsnorm(deq("token_embd.weight")[ids], deq("blk.0.attn_norm.weight").reshape(-1))
    for layer in range(30):
        p = f"blk.{layer}."
        for name in ("attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up", "ffn_down"):
            tensor = t[p + name + ".weight"]
            ty = tensor.tensor_type.name
            if ty in seen or ty in ("F32", "F16"):
                continue
            seen.add(ty)
            inp = x
            if name == "ffn_down":
                xf = rmsnorm(x, deq(p + "ffn_norm.weight").reshape(-1))
                g, u = xf @ deq(p + "ffn_gate.weight").T, xf @ deq(p + "ffn_up.weight").T
                inp = g / (1 + np.exp(-g)) * u
            w = deq(p + name + ".weight")
            block = 256 if ty.endswith("_K") else 32
            also = f" (blocks of 32 would give {rel_error(inp, w, 32):.4%})" if block == 256 else ""
            print(f"real {ty:5} ({p}{name}, {path.split('/')[-1]}): {rel_error(inp, w, block):.4%}{also}")


def main():
    rng = np.random.default_rng(0)
    random_rows(rng)
    seen = set()
    for path in sys.argv[1:]:
        real_rows(path, rng, seen)


if __name__ == "__main__":
    main()
