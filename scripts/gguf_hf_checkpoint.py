#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A GGUF's weights as a float32 Hugging Face checkpoint, without transformers' GGUF loader and
without rabbit's code: the second reference route of scripts/gguf_reference.py.

    python scripts/gguf_hf_checkpoint.py FILE.gguf OUT_DIR [--hf-dir DIR]

Every tensor is read and dequantized by gguf-py (`gguf.GGUFReader`, `gguf.quants.dequantize`),
renamed back to its Hugging Face name, and written to OUT_DIR/model.safetensors in float32
beside the config.json, generation_config.json and tokenizer of DIR, the checkpoint the GGUF
was converted from (default: the `hf` folder beside the file, as scripts/make_gguf_models.sh
lays them out). Plain transformers then loads OUT_DIR as it loads any checkpoint.

What the converter did that is undone here (llama.cpp's convert_hf_to_gguf.py, conversion/):
- names: `blk.N.attn_q` and the rest, the table below;
- llama only: the rows of q_proj and k_proj permuted within each head (LlamaModel.permute,
  with the key-value head count for k), for GGML's RoPE on adjacent pairs. Qwen2Model and
  Qwen3Model derive from TextModel, not LlamaModel, and write q/k as they are;
- MoE (qwen2moe, qwen3moe, and llama with an expert count: Mixtral): each layer's experts
  stacked into 3-D tensors `ffn_gate_exps`, `ffn_up_exps`, `ffn_down_exps` (the outermost
  dimension the expert), split back into one tensor per expert under Mixtral's names (w1, w3,
  w2) or Qwen's; the router `ffn_gate_inp` and Qwen2-MoE's shared expert (`*_shexp`);
- llama 3: `rope_freqs.weight` is not a weight of the Hugging Face model but the config's RoPE
  scaling, which the config of DIR has; gguf_reference.py applies the tensor itself.
The GGUF's shapes and hyperparameters are checked against DIR's config, so that a checkpoint
folder that does not belong to the file is refused rather than compared.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

TOP_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
BLOCK_NAMES = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
               "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
               "attn_k_norm": "self_attn.k_norm", "ffn_norm": "post_attention_layernorm",
               "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
MOE_NAMES = {"ffn_gate_inp": "mlp.gate", "ffn_gate_shexp": "mlp.shared_expert.gate_proj",
             "ffn_up_shexp": "mlp.shared_expert.up_proj", "ffn_down_shexp": "mlp.shared_expert.down_proj",
             "ffn_gate_inp_shexp": "mlp.shared_expert_gate"}
# GGUF's stacked experts -> the per-expert name after "experts.E.", Qwen's and Mixtral's.
EXPERT_NAMES = {"ffn_gate_exps": ("gate_proj", "w1"), "ffn_up_exps": ("up_proj", "w3"),
                "ffn_down_exps": ("down_proj", "w2")}
NOT_WEIGHTS = {"rope_freqs.weight"}
ARCHITECTURES = {"llama", "qwen2", "qwen3", "qwen2moe", "qwen3moe"}
# GGUF key (after "ARCH.") -> config.json key, checked when both are present.
HPARAMS = {"block_count": "num_hidden_layers", "embedding_length": "hidden_size",
           "feed_forward_length": "intermediate_size", "attention.head_count": "num_attention_heads",
           "attention.head_count_kv": "num_key_value_heads", "attention.key_length": "head_dim",
           "rope.freq_base": "rope_theta", "attention.layer_norm_rms_epsilon": "rms_norm_eps"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model")


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.parts[f.data[0]]
    return bytes(v).decode() if f.types and f.types[0].name == "STRING" else v.tolist()[0]


def hf_name(gguf_name, mixtral=False):
    if gguf_name in TOP_NAMES:
        return TOP_NAMES[gguf_name]
    parts = gguf_name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in BLOCK_NAMES:
        return f"model.layers.{parts[1]}.{BLOCK_NAMES[parts[2]]}.{parts[3]}"
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in MOE_NAMES:
        name = MOE_NAMES[parts[2]]
        if mixtral:
            name = name.replace("mlp.", "block_sparse_moe.")
        return f"model.layers.{parts[1]}.{name}.{parts[3]}"
    raise ValueError(f"tensor {gguf_name}: no Hugging Face name known for it")


def unpermute(w, n_head):
    """The inverse of convert_hf_to_gguf's LlamaModel.permute over the rows of a q or k tensor:
    there each head's rows (two halves of head_dim/2) were interleaved pairwise."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def check_config(reader, arch, config, path):
    for key, name in HPARAMS.items():
        got = field(reader, f"{arch}.{key}")
        want = config.get(name)
        if got is None or want is None:
            continue
        if (abs(got - want) > 1e-6 * abs(want)) if isinstance(want, float) else got != want:
            raise ValueError(f"{path}: {arch}.{key} is {got} but the checkpoint's config.json has {name} = {want}")


def state_dict(reader, path):
    """HF name -> float32 array, for every weight of the GGUF."""
    from gguf.quants import dequantize
    arch = field(reader, "general.architecture")
    if arch not in ARCHITECTURES:
        raise ValueError(f"{path}: architecture {arch}: expected one of {sorted(ARCHITECTURES)}")
    n_head = field(reader, f"{arch}.attention.head_count")
    n_kv = field(reader, f"{arch}.attention.head_count_kv", n_head)
    mixtral = arch == "llama" and field(reader, "llama.expert_count") is not None
    out = {}
    for t in reader.tensors:
        if t.name in NOT_WEIGHTS:
            continue
        # numpy shape: GGUF lists dimensions innermost first
        w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(tuple(reversed(t.shape.tolist())))
        parts = t.name.split(".")
        if len(parts) == 4 and parts[0] == "blk" and parts[2] in EXPERT_NAMES:
            moe = "block_sparse_moe" if mixtral else "mlp"
            for e in range(w.shape[0]):
                name = f"model.layers.{parts[1]}.{moe}.experts.{e}.{EXPERT_NAMES[parts[2]][mixtral]}.{parts[3]}"
                out[name] = np.array(w[e], dtype=np.float32, order="C", copy=True)
            continue
        name = hf_name(t.name, mixtral)
        if parts[2:3] == ["ffn_gate_inp_shexp"]:  # [hidden, 1] in GGML, which llama-quantize writes as [hidden]
            w = w.reshape(1, -1)
        if arch == "llama" and t.name.split(".")[2:3] == ["attn_q"]:
            w = unpermute(w, n_head)
        elif arch == "llama" and t.name.split(".")[2:3] == ["attn_k"]:
            w = unpermute(w, n_kv)
        out[name] = np.array(w, dtype=np.float32, order="C", copy=True)  # writable, off the memmap
    return arch, out


def write_checkpoint(reader, path, out, hf_dir=None):
    """OUT: a float32 checkpoint of the GGUF at PATH (read by READER) with HF_DIR's config and
    tokenizer. Returns HF_DIR and the tensors written (HF name -> float32 array)."""
    import torch
    from safetensors.torch import save_file
    hf_dir = hf_dir or os.path.join(os.path.dirname(os.path.abspath(path)), "hf")
    cfg_path = os.path.join(hf_dir, "config.json")
    if not os.path.isfile(cfg_path):
        raise ValueError(f"{path}: no checkpoint config at {cfg_path} (pass --hf-dir)")
    with open(cfg_path) as f:
        config = json.load(f)
    arch, tensors = state_dict(reader, path)
    check_config(reader, arch, config, path)
    # A tied model has one of token_embd and output: the converter writes what the checkpoint
    # holds, and tinystories-656k holds only lm_head.weight.
    tied = bool(config.get("tie_word_embeddings", False))
    matrices = [k for k in ("model.embed_tokens.weight", "lm_head.weight") if k in tensors]
    if len(matrices) != (1 if tied else 2):
        raise ValueError(f"{path}: has {' and '.join(matrices) or 'neither embedding nor output'} as HF names, "
                         f"but config.json has tie_word_embeddings = {tied}")
    vocab = tensors[matrices[0]].shape[0]
    if vocab != config.get("vocab_size"):
        raise ValueError(f"{path}: {matrices[0]} has {vocab} rows but config.json has vocab_size {config.get('vocab_size')}")
    os.makedirs(out, exist_ok=True)
    save_file({k: torch.from_numpy(v) for k, v in tensors.items()}, os.path.join(out, "model.safetensors"),
              metadata={"format": "pt"})
    config["torch_dtype"] = "float32"
    config.pop("dtype", None)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    for name in ("generation_config.json",) + TOKENIZER_FILES:
        if os.path.isfile(os.path.join(hf_dir, name)):
            shutil.copyfile(os.path.join(hf_dir, name), os.path.join(out, name))
    return hf_dir, tensors


def against_hf(written, hf_dir):
    """The largest |difference| of every tensor from the original checkpoint's, and the RMS of
    that tensor: what dequantization changed, and a check of the names and the unpermutation."""
    from safetensors.numpy import load_file
    ours, theirs = load_file(written), load_file(os.path.join(hf_dir, "model.safetensors"))
    worst = 0.0
    for name in sorted(set(ours) | set(theirs)):
        if name not in ours or name not in theirs:
            print(f"{name:48} only in {'the GGUF' if name in ours else hf_dir}")
            continue
        a, b = ours[name].astype(np.float64), theirs[name].astype(np.float64)
        if a.shape != b.shape:
            raise ValueError(f"{name}: shape {a.shape} from the GGUF, {b.shape} in {hf_dir}")
        d = float(np.abs(a - b).max())
        worst = max(worst, d)
        print(f"{name:48} max|d| {d:10.3g}  rms {float(np.sqrt(np.mean(b * b))):10.3g}")
    print(f"largest difference over all tensors: {worst:.3g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf")
    ap.add_argument("out")
    ap.add_argument("--hf-dir", help="the checkpoint the GGUF came from (default: the hf folder beside it)")
    ap.add_argument("--against-hf", action="store_true",
                    help="also print how far each tensor is from the checkpoint's own (0 for an F32 GGUF)")
    args = ap.parse_args()
    import gguf
    hf_dir, _ = write_checkpoint(gguf.GGUFReader(args.gguf), args.gguf, args.out, args.hf_dir)
    if args.against_hf:
        against_hf(os.path.join(args.out, "model.safetensors"), hf_dir)
    print(f"wrote {args.out} (float32, gguf-py's dequantization of {args.gguf}, config and tokenizer of {hf_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
