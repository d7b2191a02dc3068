#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Tiny mixture-of-experts GGUFs made by llama.cpp's own converter, with reference logits.

For each model of MODELS (qwen3moe, qwen2moe with its shared expert, and Mixtral, which GGUF
stores as llama with an expert count) and each type of its TYPES:
  - the Hugging Face checkpoint: tests/data/moe/<source> where one fits, else one built here
    by transformers from a small config with a fixed seed, as scripts/moe_reference.py does;
  - F32: llama.cpp's convert_hf_to_gguf.py on it (run with its tokenizer step left out: these
    models have no tokenizer; rabbit and the tests work on token ids);
  - Q8_0: llama-quantize from the F32 file. Q8_0 blocks are 32 values of a row, so these
    models are 32 wide; the 16-wide ones quantize nothing;
  - the reference, transformers in float32 on the CPU: for F32 the original checkpoint itself;
    for a quantized file the GGUF's weights dequantized by gguf-py and renamed back
    (scripts/gguf_hf_checkpoint.py; transformers' own GGUF loader reads Mixtral as a dense
    llama and misreads qwen2moe's shared expert gate), cross-checked for qwen3moe against
    transformers' `from_pretrained(gguf_file=)`.
Out: tests/data/moe_gguf/<model>-<TYPE>.gguf and <model>-<TYPE>.json (prompt ids, the logits
of every prompt position, the prompt and 16 greedy tokens):

    ~/.cache/rabbit/venv/bin/python scripts/moe_gguf_reference.py [--only NAME,...] [--out DIR]

Needs llama.cpp's source and llama-quantize (RABBIT_PEERS, LLAMA_CPP_PYTHON as for
scripts/make_gguf_models.sh).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import gguf_hf_checkpoint  # noqa: E402
from moe_reference import random_model, rounded  # noqa: E402

PEERS = os.environ.get("RABBIT_PEERS", os.path.expanduser("~/.cache/rabbit/peers"))
LLAMA_CPP = os.path.join(PEERS, "llama_cpp_python-" + os.environ.get("LLAMA_CPP_PYTHON", "0.3.36"), "vendor", "llama.cpp")

WIDE = dict(hidden_size=32, head_dim=16)  # rows of 32: one Q8_0 block
# name -> (source in tests/data/moe or None, config class, config keys, prompt, types). llama.cpp
# runs qwen2moe and qwen3moe with every layer sparse (its converter maps no dense MLP there),
# qwen3moe with norm_topk_prob (its graph renormalises; the converter records no key), so
# these configs keep to that.
MODELS = {
    "qwen3moe": ("qwen3-moe-norm", "Qwen3MoeConfig", {}, [1, 17, 33, 9, 50, 3, 41, 28, 12, 60, 5, 44], ["F32"]),
    "qwen3moe-wide": (None, "Qwen3MoeConfig", dict(
        WIDE, num_hidden_layers=2, intermediate_size=64, moe_intermediate_size=32, num_experts=4,
        num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[]),
        [1, 17, 33, 9, 50, 3, 41, 28, 12, 60, 5, 44], ["Q8_0"]),
    "qwen2moe": (None, "Qwen2MoeConfig", dict(
        num_hidden_layers=2, intermediate_size=24, moe_intermediate_size=8, shared_expert_intermediate_size=12,
        num_experts=4, num_experts_per_tok=2, norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[],
        qkv_bias=True), [1, 40, 7, 26, 63, 11, 18, 52, 3, 34], ["F32"]),
    "qwen2moe-wide": (None, "Qwen2MoeConfig", dict(
        WIDE, num_hidden_layers=2, intermediate_size=64, moe_intermediate_size=32, shared_expert_intermediate_size=32,
        num_experts=4, num_experts_per_tok=2, norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[],
        qkv_bias=True), [1, 40, 7, 26, 63, 11, 18, 52, 3, 34], ["Q8_0"]),
    "mixtral": ("mixtral", "MixtralConfig", {}, [1, 21, 45, 6, 38, 14, 59, 27, 10, 48, 31], ["F32"]),
    "mixtral-wide": (None, "MixtralConfig", dict(
        WIDE, num_hidden_layers=2, intermediate_size=32, num_local_experts=4, num_experts_per_tok=2,
        sliding_window=None, rope_theta=1e6), [1, 21, 45, 6, 38, 14, 59, 27, 10, 48, 31], ["Q8_0"]),
}

# The converter run in-process with its vocabulary step a no-op.
CONVERT = """
import sys
sys.path[:0] = [{src!r}, {src!r} + "/gguf-py"]
import conversion.base, conversion.llama, conversion.qwen
import convert_hf_to_gguf
for cls in (conversion.base.TextModel, conversion.llama.LlamaModel, conversion.qwen.Qwen2MoeModel,
            conversion.qwen.Qwen3MoeModel):
    cls.set_vocab = lambda self: None
sys.argv = ["convert_hf_to_gguf.py"] + sys.argv[1:]
convert_hf_to_gguf.main()
"""


def build_checkpoint(name, path):
    _, cls_name, keys, _, _ = MODELS[name]
    model = random_model(cls_name, keys, 1700 + sorted(MODELS).index(name))
    model.save_pretrained(path, safe_serialization=True)


def run(cmd, log):
    with open(log, "w") as f:
        if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode != 0:
            sys.exit(f"{' '.join(cmd[:3])}... failed: see {log}")


def reference(model_dir, prompt):
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[0]
        seq = list(prompt)
        for _ in range(16):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    return logits, seq


def via_transformers_gguf(gguf_path, hf, prompt):
    """transformers' own GGUF loader (Qwen archs only): the prompt's logits. It takes the vocab
    size from the tokenizer, which these files lack, and maps no key to moe_intermediate_size
    or shared_expert_intermediate_size: those three come from the checkpoint's config."""
    with open(os.path.join(hf, "config.json")) as f:
        cfg = json.load(f)
    keys = {k: cfg[k] for k in ("vocab_size", "moe_intermediate_size", "shared_expert_intermediate_size") if k in cfg}
    d, f = os.path.split(gguf_path)
    model = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32, **keys)
    with torch.no_grad():
        return model(torch.tensor([prompt])).logits[0]


def make(name, out, work):
    import gguf
    source, _, _, prompt, types = MODELS[name]
    hf = os.path.join(REPO, "tests", "data", "moe", source) if source else os.path.join(work, name, "hf")
    if not source:
        build_checkpoint(name, hf)
    f32 = os.path.join(work, name, "F32.gguf")
    run([sys.executable, "-c", CONVERT.format(src=LLAMA_CPP), hf, "--outtype", "f32", "--outfile", f32],
        os.path.join(work, name + "-convert.log"))
    for t in types:
        gguf_path = os.path.join(out, f"{name}-{t}.gguf")
        if t == "F32":
            os.replace(f32, gguf_path)
            ref_dir = hf
        else:
            run([os.path.join(LLAMA_CPP, "build", "bin", "llama-quantize"), f32, gguf_path, t],
                os.path.join(work, f"{name}-quantize-{t}.log"))
            ref_dir = os.path.join(work, name, "dequant-" + t)
            gguf_hf_checkpoint.write_checkpoint(gguf.GGUFReader(gguf_path), gguf_path, ref_dir, hf)
        logits, seq = reference(ref_dir, prompt)
        # transformers' loader reads qwen2moe's ffn_gate_inp_shexp [hidden, 1] as [1, 1, hidden]
        # and refuses it, and Mixtral as a dense llama: qwen3moe only.
        if name.startswith("qwen3moe"):
            apart = float((via_transformers_gguf(gguf_path, hf, prompt) - logits).abs().max())
            print(f"{name}-{t}: transformers' GGUF loader is {apart:.3g} from the reference")
            if apart > 1e-4:
                sys.exit(f"{name}-{t}: the two references differ by {apart}")
        ref = {"transformers": transformers.__version__, "torch": torch.__version__, "gguf_type": t,
               "source": f"tests/data/moe/{source}" if source else "built by scripts/moe_gguf_reference.py",
               "prompt_ids": prompt, "prompt_logits": rounded(logits.tolist()), "greedy_ids": seq}
        with open(os.path.join(out, f"{name}-{t}.json"), "w") as f:
            json.dump(ref, f)
        print(name, t, "written to", gguf_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "moe_gguf"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for name in (a.only.split(",") if a.only else MODELS):
            os.makedirs(os.path.join(work, name), exist_ok=True)
            make(name, a.out, work)


if __name__ == "__main__":
    main()
