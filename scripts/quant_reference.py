#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Check rabbit's block (de)quantization against the `gguf` Python package, bit for bit.

    ~/.cache/rabbit/venv/bin/python scripts/quant_reference.py [--build DIR] [--ggml-lib SO] [GGUF...]

(a) random blocks of every type rabbit decodes (random bytes; f16 scale fields forced finite)
    through `rabbit-quantcheck dequantize` and gguf.quants.dequantize: the f32 results must be
    equal as uint32 (NaN-safe, -0.0 is not 0.0);
(b) every tensor of each GGUF file given, likewise;
(c) quantization: random and real-looking f32 data through `rabbit-quantcheck quantize` and
    gguf.quants.quantize for the types gguf-py writes (q8_0, q4_0, q4_1, q5_0, q5_1): the bytes
    must be equal. For the types gguf-py cannot write (q4_k, q5_k, q6_k) it reports rabbit's
    relative RMSE, and with --ggml-lib (llama.cpp's libggml-base.so) llama.cpp's own quantizer's
    RMSE on the same data and the share of identical blocks; those rows are reports, not checks.
Prints a table; exits 1 on any mismatch (2 on a usage error).
"""
import argparse
import ctypes
import os
import subprocess
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

# rabbit's dtype name -> (gguf type, offsets of the f16 fields in a block)
DECODED = {
    "q8_0": (T.Q8_0, [0]),
    "q4_0": (T.Q4_0, [0]),
    "q4_1": (T.Q4_1, [0, 2]),
    "q5_0": (T.Q5_0, [0]),
    "q5_1": (T.Q5_1, [0, 2]),
    "q2_k": (T.Q2_K, [80, 82]),
    "q3_k": (T.Q3_K, [108]),
    "q4_k": (T.Q4_K, [0, 2]),
    "q5_k": (T.Q5_K, [0, 2]),
    "q6_k": (T.Q6_K, [208]),
    "f16": (T.F16, [0]),
    "bf16": (T.BF16, []),
}
GGUF_QUANTIZES = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]
K_QUANTS = ["q4_k", "q5_k", "q6_k"]
N_BLOCKS = 4096


def quantcheck(binary, mode, dtype, data):
    proc = subprocess.run([binary, mode, dtype], input=data.tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"rabbit-quantcheck {mode} {dtype}: exit {proc.returncode}: {proc.stderr.decode().strip()}")
    return proc.stdout


def same_bits(a, b):
    a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1).view(np.uint32)
    b = np.ascontiguousarray(b, dtype=np.float32).reshape(-1).view(np.uint32)
    return a.shape == b.shape and np.array_equal(a, b), int(np.count_nonzero(a != b)) if a.shape == b.shape else -1


def random_blocks(name, rng):
    qtype, f16_offsets = DECODED[name]
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(N_BLOCKS, size), dtype=np.uint8)
    for off in f16_offsets:
        h = raw[:, off : off + 2].copy().view(np.uint16)
        # an all-ones exponent (inf/NaN) becomes an ordinary number; subnormals and -0 stay
        h = np.where((h & 0x7C00) == 0x7C00, h & np.uint16(0xBFFF), h)
        raw[:, off : off + 2] = h.view(np.uint8).reshape(N_BLOCKS, 2)
    if name == "bf16":  # as bf16, keep the exponent off all-ones too
        h = raw.view(np.uint16)
        h[:] = np.where((h & 0x7F80) == 0x7F80, h & np.uint16(0xBFFF), h)
    return raw, qtype


def check_dequantize(binary, name, raw, qtype):
    ours = np.frombuffer(quantcheck(binary, "dequantize", name, raw), dtype=np.float32)
    ref = gguf.quants.dequantize(raw, qtype)
    return same_bits(ours, ref)


def real_looking(rng, n):
    """Weights-like data: normal rows with a few outliers, some zero and constant blocks."""
    x = rng.standard_normal(n).astype(np.float32) * np.float32(0.02)
    x[rng.integers(0, n, n // 500)] *= np.float32(30.0)
    x[:256] = 0.0
    x[256:512] = np.float32(0.125)
    x[512:768] = np.round(x[512:768] * 400) / 400  # ties and repeated values
    return x


def rel_rmse(x, y):
    return float(np.sqrt(np.mean((x.astype(np.float64) - y) ** 2)) / np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def ggml_quantizer(lib_path):
    lib = ctypes.CDLL(lib_path)
    fn = lib.ggml_quantize_chunk
    fn.restype = ctypes.c_size_t
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]

    def quantize(x, qtype):
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        n_per_row = 4096
        rows = x.size // n_per_row
        out = np.zeros(rows * n_per_row // block * size, dtype=np.uint8)
        fn(int(qtype), x.ctypes.data, out.ctypes.data, 0, rows, n_per_row, None)
        return out

    return quantize


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gguf", nargs="*", help="GGUF files whose every tensor is compared")
    ap.add_argument("--build", default="build-emu", help="the build directory holding rabbit-quantcheck")
    ap.add_argument("--ggml-lib", help="llama.cpp's libggml-base.so, for its k-quant quantizer's RMSE")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    binary = os.path.join(args.build, "rabbit-quantcheck")
    if not os.access(binary, os.X_OK):
        print(f"{binary}: not found (build the rabbit-quantcheck target, or pass --build)", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    failures = 0
    print(f"{'check':<12} {'type':<6} {'what':<44} {'elements':>10}  result")

    def row(check, name, what, n, ok, detail=""):
        nonlocal failures
        failures += 0 if ok else 1
        print(f"{check:<12} {name:<6} {what:<44} {n:>10}  {'ok' if ok else 'MISMATCH'} {detail}")

    for name in DECODED:
        raw, qtype = random_blocks(name, rng)
        ok, bad = check_dequantize(binary, name, raw, qtype)
        n = raw.size // gguf.GGML_QUANT_SIZES[qtype][1] * gguf.GGML_QUANT_SIZES[qtype][0]
        row("dequantize", name, f"{N_BLOCKS} random blocks", n, ok, "" if ok else f"({bad} elements differ)")

    for path in args.gguf:
        reader = gguf.GGUFReader(path)
        for t in reader.tensors:
            name = t.tensor_type.name.lower()
            if name == "f32":
                continue  # stored as it is decoded
            if name not in DECODED:
                row("gguf", name, f"{t.name}: type rabbit does not decode", 0, False)
                continue
            raw = np.ascontiguousarray(t.data).view(np.uint8)
            ok, bad = check_dequantize(binary, name, raw, t.tensor_type)
            row("gguf", name, f"{os.path.basename(path)[:20]}:{t.name}"[:44], int(t.n_elements), ok,
                "" if ok else f"({bad} elements differ)")

    data = {"random": real_looking(rng, 256 * 4096)}
    for path in args.gguf[:1]:  # real weights: the first GGUF's first 2-D quantized tensors, decoded
        reader = gguf.GGUFReader(path)
        picked = [t for t in reader.tensors if len(t.shape) == 2 and t.tensor_type.name.lower() in DECODED][:4]
        x = np.concatenate([gguf.quants.dequantize(np.ascontiguousarray(t.data), t.tensor_type).reshape(-1) for t in picked])
        data["gguf weights"] = np.ascontiguousarray(x[: x.size // 4096 * 4096], dtype=np.float32)
    for label, x in data.items():
        for name in GGUF_QUANTIZES:
            qtype = DECODED[name][0]
            ours = np.frombuffer(quantcheck(binary, "quantize", name, x), dtype=np.uint8)
            ref = gguf.quants.quantize(x.reshape(-1, 4096), qtype).reshape(-1)
            ok = ours.shape == ref.shape and np.array_equal(ours, ref)
            diff = "" if ok else f"({int(np.count_nonzero(ours != ref))} bytes differ)"
            row("quantize", name, f"{label} vs gguf.quants.quantize", x.size, ok, diff)

    ggml = ggml_quantizer(args.ggml_lib) if args.ggml_lib else None
    print()
    print(f"{'k-quant':<8} {'data':<14} {'rabbit rel. RMSE':>17} {'llama.cpp rel. RMSE':>20} {'identical blocks':>17}")
    for label, x in data.items():
        for name in K_QUANTS:
            qtype = DECODED[name][0]
            ours = np.frombuffer(quantcheck(binary, "quantize", name, x), dtype=np.uint8)
            ours_x = gguf.quants.dequantize(ours, qtype).reshape(-1)
            theirs_text, same_text = "-", "-"
            if ggml:
                theirs = ggml(x, qtype)
                theirs_x = gguf.quants.dequantize(theirs, qtype).reshape(-1)
                theirs_text = f"{rel_rmse(x, theirs_x):.5f}"
                size = gguf.GGML_QUANT_SIZES[qtype][1]
                same = np.all(ours.reshape(-1, size) == theirs.reshape(-1, size), axis=1)
                same_text = f"{100 * same.mean():.2f}%"
            print(f"{name:<8} {label:<14} {rel_rmse(x, ours_x):>17.5f} {theirs_text:>20} {same_text:>17}")

    print()
    print("all equal" if failures == 0 else f"{failures} mismatching checks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
