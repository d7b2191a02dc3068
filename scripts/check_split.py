#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks a `rabbit split` output against its source with the reference safetensors reader.

Every tensor of every unit must equal the source tensors it is made of (stacked along dim 0
for qkv and gate_up), converted to the stored dtype with numpy's own rounding; padding must
be zero. Independent of rabbit's C++ reader: the source is loaded by the `safetensors`
package, the units by numpy from the byte offsets in manifest.json (docs/FORMAT.md).
numpy has no bfloat16, so BF16 *sources* are out of its reach; F32 and F16 sources, split
to any dtype, are covered.

    python scripts/check_split.py MODEL_DIR OUT     (in the venv of scripts/venv.sh)
"""
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file


def load_source(model_dir):
    tensors = {}
    for name in sorted(os.listdir(model_dir)):
        if name.endswith(".safetensors"):
            path = os.path.join(model_dir, name)
            tensors.update(load_file(path))
            with open(path, "rb") as f:  # metadata aliases, as tinystories-656k uses
                n = int.from_bytes(f.read(8), "little")
                meta = json.loads(f.read(n)).get("__metadata__", {})
            for alias, target in meta.items():
                if target in tensors and alias not in tensors:
                    tensors[alias] = tensors[target]
    return tensors


def sources(unit, tensor):
    if unit == "embed":
        return ["model.embed_tokens.weight"]
    if unit == "norm":
        return ["model.norm.weight"]
    if unit == "lm_head":
        return ["lm_head.weight"]
    p = "model.layers.%s." % unit.split(".")[1]
    return {
        "attn_norm": [p + "input_layernorm.weight"],
        "qkv": [p + "self_attn.%s_proj.weight" % x for x in "qkv"],
        "qkv_bias": [p + "self_attn.%s_proj.bias" % x for x in "qkv"],
        "q_norm": [p + "self_attn.q_norm.weight"],
        "k_norm": [p + "self_attn.k_norm.weight"],
        "o": [p + "self_attn.o_proj.weight"],
        "o_bias": [p + "self_attn.o_proj.bias"],
        "ffn_norm": [p + "post_attention_layernorm.weight"],
        "gate_up": [p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"],
        "down": [p + "mlp.down_proj.weight"],
    }[tensor]


def to_bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even, NaN kept quiet."""
    b = x.astype(np.float32).view(np.uint32)
    rounded = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (b & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, ((b >> 16) | 0x40).astype(np.uint16), rounded)


def encode(values, dtype):
    if dtype == "f32":
        return values.astype(np.float32).tobytes()
    if dtype == "f16":
        return values.astype(np.float16).tobytes()
    if dtype == "bf16":
        return to_bf16_bits(values).tobytes()
    raise ValueError(dtype)


def main():
    model_dir, out = sys.argv[1], sys.argv[2]
    src = load_source(model_dir)
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    bad = 0
    checked = 0
    for unit in manifest["units"]:
        data = open(os.path.join(out, unit["file"]), "rb").read()
        assert len(data) == unit["size"], unit["name"]
        section = data[unit["data_offset"]:]
        covered = np.zeros(len(section), dtype=bool)
        for t in unit["tensors"]:
            parts = [src[n].astype(np.float32) for n in sources(unit["name"], t["name"])]
            values = np.concatenate(parts, axis=0)
            assert list(values.shape) == t["shape"], (unit["name"], t["name"], values.shape, t["shape"])
            want = encode(values, t["dtype"])
            got = section[t["offset"]:t["offset"] + t["size"]]
            if want != got:
                bad += 1
                print("MISMATCH %s/%s" % (unit["name"], t["name"]))
            covered[t["offset"]:t["offset"] + t["size"]] = True
            checked += 1
        padding = np.frombuffer(section, dtype=np.uint8)[~covered]
        if padding.any():
            bad += 1
            print("NONZERO PADDING in %s" % unit["name"])
    print("%s: %d tensors in %d units checked against %s with safetensors %s, %d problems"
          % (out, checked, len(manifest["units"]), model_dir, __import__("safetensors").__version__, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
