#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Tiny random mixture-of-experts models written by transformers itself, with its logits.

For each model of MODELS: builds the transformers class from a small config with a fixed
seed, saves it with save_pretrained (safetensors, f32) under tests/data/moe/<name>/, runs it
on the CPU in float32 and writes tests/data/moe/<name>/reference.json: the logits of every
prompt position and a greedy continuation. The checkpoints are small (tens of KB) so that the
tests run transformers' own files, not ones rabbit wrote:

    ~/.cache/rabbit/venv/bin/python scripts/moe_reference.py [--only a,b] [--out DIR]
"""
import argparse
import json
import os

import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))

COMMON = dict(hidden_size=16, num_attention_heads=2, num_key_value_heads=1, vocab_size=64,
              max_position_embeddings=128, rms_norm_eps=1e-6, tie_word_embeddings=False,
              bos_token_id=1, eos_token_id=2)

# name -> (config class, config keys, prompt ids). Between them: norm_topk_prob both ways,
# decoder_sparse_step and mlp_only_layers (dense layers between MoE ones), the shared expert
# with its sigmoid gate, Mixtral's always-renormalised router.
MODELS = {
    "qwen3-moe-norm": ("Qwen3MoeConfig", dict(
        num_hidden_layers=2, head_dim=8, intermediate_size=24, moe_intermediate_size=8, num_experts=6,
        num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[]),
        [1, 17, 33, 9, 50, 3, 41, 28, 12, 60, 5, 44]),
    "qwen3-moe-sparse": ("Qwen3MoeConfig", dict(
        num_hidden_layers=4, head_dim=8, intermediate_size=20, moe_intermediate_size=8, num_experts=5,
        num_experts_per_tok=3, norm_topk_prob=False, decoder_sparse_step=2, mlp_only_layers=[3],
        tie_word_embeddings=True),
        [1, 8, 61, 22, 30, 4, 19, 55, 37, 2, 13]),
    "qwen2-moe-shared": ("Qwen2MoeConfig", dict(
        num_hidden_layers=3, intermediate_size=24, moe_intermediate_size=8, shared_expert_intermediate_size=12,
        num_experts=4, num_experts_per_tok=2, norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[1],
        qkv_bias=True),
        [1, 40, 7, 26, 63, 11, 18, 52, 3, 34]),
    "mixtral": ("MixtralConfig", dict(
        num_hidden_layers=2, intermediate_size=8, num_local_experts=4, num_experts_per_tok=2,
        sliding_window=None, rope_theta=1e6),
        [1, 21, 45, 6, 38, 14, 59, 27, 10, 48, 31]),
}


def rounded(rows):
    return [[float("%.9g" % v) for v in r] for r in rows]


def random_model(cls_name, keys, seed):
    """A float32 model of transformers' config class cls_name (COMMON and keys), seeded."""
    torch.manual_seed(seed)
    cfg = getattr(transformers, cls_name)(**{**COMMON, **keys})
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():  # larger than the init's 0.02 so that routing decides
            p.copy_(torch.randn_like(p) * 0.5)
        for n, p in model.named_parameters():
            if n.endswith("norm.weight") or n.endswith("layernorm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    return model


def make(name, out_dir):
    cls_name, keys, prompt = MODELS[name]
    model = random_model(cls_name, keys, 1600 + sorted(MODELS).index(name))
    model.eval()
    path = os.path.join(out_dir, name)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    ids = torch.tensor([prompt])
    with torch.no_grad():
        logits = model(ids).logits[0]
        seq = list(prompt)
        for _ in range(16):
            nxt = int(model(torch.tensor([seq])).logits[0, -1].argmax())
            seq.append(nxt)
    ref = {"transformers": transformers.__version__, "torch": torch.__version__, "prompt_ids": prompt,
           "prompt_logits": rounded(logits.tolist()), "greedy_ids": seq}
    with open(os.path.join(path, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(name, "written to", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "moe"))
    a = ap.parse_args()
    for name in (a.only.split(",") if a.only else MODELS):
        make(name, a.out)


if __name__ == "__main__":
    main()
