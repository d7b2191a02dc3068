#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reference logits from Hugging Face transformers, run on the CPU in float32.

Given a model directory and prompt ids, writes JSON with the logits of every prompt position
and a greedy continuation (and the logits of each of its steps):

    python scripts/hf_reference.py MODEL_DIR --ids 1,5,9 --steps 32 --out FILE.json

`--goldens` regenerates the goldens of tests/data/goldens: it builds each tiny test model with
build/rabbit-genmodel (deterministic from its preset and seed), runs transformers on it and
writes tests/data/goldens/<name>.json (`--only a,b` for some of them, `--genmodel PATH` for
another build's binary). Run it in the venv of `scripts/venv.sh engine` (torch and
transformers, pinned in scripts/requirements-engine.txt).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
import transformers
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))

# name -> (rabbit-genmodel arguments, prompt ids). Each exercises one architecture's features.
GOLDENS = {
    "qwen2-tied-bias": (["--preset", "tiny-qwen2", "--seed", "11"], [1, 17, 99, 250, 3, 77, 402, 8, 160, 61, 300, 12]),
    "qwen3-qknorm-untied": (["--preset", "tiny-qwen3", "--seed", "12"], [1, 44, 210, 9, 500, 33, 71, 128, 256, 5, 411]),
    "llama3-rope-scaling": (["--preset", "tiny-llama3", "--seed", "13", "--max-pos", "512"],
                            [1, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43]),
    "mistral-sliding-window": (["--preset", "tiny-mistral", "--seed", "14", "--sliding-window", "16"],
                               [1, 200, 100, 50, 25, 12, 6, 3, 150, 75]),
}


def long_prompt(n, seed):
    """n deterministic ids of the 256-token vocabulary of LONG_GOLDENS, for prompts past the original context."""
    return [1] + [(seed * 131 + 37 * i * i + 11 * i) % 251 + 3 for i in range(1, n)]


# RoPE scaling past the original context: each prompt runs to more than twice the scaling's
# original_max_position_embeddings (dynamic NTK: max_position_embeddings), and the 32 greedy
# steps go further. Qwen's model-card form (rope_scaling with "type") and transformers 5's
# (rope_parameters with rope_type) are both used.
LONG_GOLDENS = {
    "qwen2-yarn": (["--preset", "tiny-qwen2", "--seed", "21", "--max-pos", "64", "--rope-theta", "10000",
                    "--rope-scaling", '{"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}'],
                   long_prompt(136, 21)),
    "qwen3-yarn-mscale": (["--preset", "tiny-qwen3", "--seed", "22", "--max-pos", "256", "--rope-theta", "10000",
                           "--rope-parameters", "--rope-scaling",
                           '{"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 32, '
                           '"beta_fast": 16, "beta_slow": 2, "mscale": 1.0, "mscale_all_dim": 0.5}'],
                          long_prompt(80, 22)),
    "llama-dynamic-ntk": (["--preset", "tiny-llama3", "--seed", "23", "--max-pos", "32", "--rope-theta", "10000",
                           "--rope-scaling", '{"rope_type": "dynamic", "factor": 4.0}'],
                          long_prompt(72, 23)),
    "qwen3-dynamic-ntk": (["--preset", "tiny-qwen3", "--seed", "24", "--max-pos", "32", "--rope-theta", "10000",
                           "--rope-parameters", "--rope-scaling", '{"rope_type": "dynamic", "factor": 4.0}'],
                          long_prompt(70, 24)),
    "llama3-long": (["--preset", "tiny-llama3", "--seed", "25"], long_prompt(136, 25)),
    "qwen2-longrope": (["--preset", "tiny-qwen2", "--seed", "26", "--max-pos", "128", "--rope-theta", "10000",
                        "--rope-scaling",
                        '{"rope_type": "longrope", "original_max_position_embeddings": 32, '
                        '"short_factor": [1.0, 1.0, 1.1, 1.2, 1.5, 2.0, 2.5, 3.0], '
                        '"long_factor": [1.0, 1.3, 1.8, 2.4, 3.0, 3.6, 4.0, 4.0]}'],
                       long_prompt(72, 26)),
}
for _args, _ in LONG_GOLDENS.values():
    _args += ["--vocab", "256"]  # smaller files: [prompt, vocab] logits
GOLDENS.update(LONG_GOLDENS)


def rounded(x):
    """Logits to 9 significant digits (f32 needs at most 9 to round-trip): smaller files."""
    if isinstance(x, list):
        return [rounded(v) for v in x]
    return float("%.9g" % x) if isinstance(x, float) else x


def reference(model_dir, ids, steps):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        input_ids = torch.tensor([ids])
        prompt_logits = model(input_ids).logits[0].tolist()
        out = model.generate(input_ids, max_new_tokens=steps, do_sample=False, output_logits=True,
                             return_dict_in_generate=True, eos_token_id=None, pad_token_id=0,
                             min_new_tokens=steps)
    generated = out.sequences[0, len(ids):].tolist()
    step_logits = [l[0].tolist() for l in out.logits]
    return {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "prompt_ids": ids,
        "prompt_logits": prompt_logits,
        "greedy_ids": generated,
        "step_logits": step_logits,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir", nargs="?")
    ap.add_argument("--ids", help="prompt ids, comma-separated")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--out")
    ap.add_argument("--goldens", action="store_true", help="regenerate tests/data/goldens")
    ap.add_argument("--genmodel", help="with --goldens: the rabbit-genmodel binary (default build/rabbit-genmodel)")
    ap.add_argument("--only", help="with --goldens: these goldens only, comma-separated")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    if args.goldens:
        genmodel = args.genmodel or os.path.join(REPO, "build", "rabbit-genmodel")
        out_dir = os.path.join(REPO, "tests", "data", "goldens")
        os.makedirs(out_dir, exist_ok=True)
        for name, (gen_args, ids) in GOLDENS.items():
            if args.only and name not in args.only.split(","):
                continue
            with tempfile.TemporaryDirectory() as tmp:
                subprocess.run([genmodel, *gen_args, "--dtype", "f32", "-o", tmp], check=True, stderr=subprocess.DEVNULL)
                data = reference(tmp, ids, args.steps)
            data["genmodel"] = gen_args
            if name in LONG_GOLDENS:  # the tests read neither step_logits nor the last digits
                del data["step_logits"]
                data = {k: rounded(v) for k, v in data.items()}
            path = os.path.join(out_dir, name + ".json")
            with open(path, "w") as f:
                json.dump(data, f)
                f.write("\n")
            print("wrote %s (%d prompt ids, %d greedy steps)" % (os.path.relpath(path, REPO), len(ids), args.steps))
        return 0

    if not args.model_dir or not args.ids or not args.out:
        ap.error("MODEL_DIR, --ids and --out are required (or --goldens)")
    data = reference(args.model_dir, [int(x) for x in args.ids.split(",")], args.steps)
    with open(args.out, "w") as f:
        json.dump(data, f)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
