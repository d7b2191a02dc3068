#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""rabbit on a GGUF file against Hugging Face transformers on the same file.

transformers reads a GGUF by dequantizing every tensor (gguf-py) into a float32 model, and
computes in float32: the reference is the GGUF's weights, exactly, with exact activations.

    python scripts/gguf_reference.py FILE.gguf... [--prompt TEXT] [--steps 32] [--json OUT]
                                     [--require-greedy FILE|all]
    python scripts/gguf_reference.py FILE.gguf --save-f32 DIR

The first form runs `rabbit run -m FILE.gguf --raw --temp 0 -n STEPS --dump-logits` and
transformers' greedy generate() on the same prompt ids (rabbit's tokenization, printed by
`rabbit tokenize`, with transformers' own tokenization of the prompt compared beside it), then
transformers once more on the prompt followed by rabbit's greedy tokens, so that every logit
row rabbit dumped has a reference even after the two greedy paths part. It prints a row per
file: greedy equal (yes/no, and how many leading tokens agree), max |rabbit - transformers|
over every dumped row, the reference logits' RMS, the ratio of the two, the tolerance, the
share of rows whose top token agrees, and whether the prompt's tokenization agrees; it exits
1 when a file's logits are off by more than the tolerance (or its greedy tokens differ, for a
file named by --require-greedy). Random-weight models have near ties among their top logits,
so that their greedy paths may part legitimately; a trained model's should not.

The criterion is the RMS of the logit differences over every row, as a share of the RMS of
the reference logits (the largest difference is reported beside it: over ~10^6 logits it
sits 4 to 5 RMS errors out, too much at the mercy of one tail to be the test). Tolerances:
  F32, F16 and quantized weights, with rabbit's default `--act-quant f32`: rabbit computes
    in f32 against weights widened or dequantized on the fly (to the values gguf-py's
    dequantize gives, bit for bit), so only the order of the f32 sums differs from
    transformers: 1e-4.
  BF16 weights on a processor with AVX512_BF16, and quantized weights under `--act-quant q8`
    (RABBIT_ACT_QUANT=q8 here): rabbit rounds each product's input activations, to bf16, or
    like llama.cpp to 8 bits per block of 32 (256 for the k-quants). docs/ARCHITECTURE.md
    measures what one rounding costs: a relative RMS error of the product of 0.4 % (blocks of
    32) to 1.7 % (SwiGLU outputs in 256-blocks), tools/qbench/q8_error.py on SmolLM2's real
    activations. An estimate, not a bound: with up to 2 % from the products of the first
    layers, and errors independent from layer to layer that the residual stream carries on,
    the logits' relative RMS error grows as 2 % * sqrt(L / 2) over L layers, capped at 10 %.
    docs/BENCHMARKS.md has the measured values beside it.

`--save-f32 DIR` writes the dequantized model as a float32 Hugging Face checkpoint
(safetensors) with its tokenizer, for scripts/perplexity.sh.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
ACT_QUANT = os.environ.get("RABBIT_ACT_QUANT", "f32")  # rabbit run --act-quant
ROUNDED_TYPES = {"BF16"}  # activations rounded to bf16 (AVX512_BF16), whatever --act-quant says


def gguf_facts(path):
    """The GGUF's block count and its weight types, read with gguf-py."""
    import gguf
    r = gguf.GGUFReader(path)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    layers = int(r.fields[arch + ".block_count"].parts[-1][0])
    types = sorted({t.tensor_type.name for t in r.tensors if len(t.shape) > 1})
    return arch, layers, types


def load(path):
    d, name = os.path.split(os.path.abspath(path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    model.eval()
    apply_rope_freqs(path, model)
    return tok, model


def apply_rope_freqs(path, model):
    """Llama 3 RoPE scaling, which llama.cpp's converter stores as the tensor rope_freqs.weight
    (a divisor per frequency) and transformers' GGUF loader leaves out: the frequencies divided
    by it, as llama.cpp runs them (transformers' llama3 rule gives them to within an ulp)."""
    import gguf
    t = [t for t in gguf.GGUFReader(path).tensors if t.name == "rope_freqs.weight"]
    if not t:
        return
    rope = model.model.rotary_emb
    factors = torch.tensor(np.array(t[0].data, dtype=np.float32))
    rope.inv_freq = rope.inv_freq / factors
    if hasattr(rope, "original_inv_freq"):
        rope.original_inv_freq = rope.inv_freq


def rabbit_run(rabbit, path, prompt, steps, tmp):
    """rabbit's prompt ids, and the logits it dumped: [prompt + steps - 1, vocab]."""
    ids = json.loads(subprocess.run([rabbit, "-q", "tokenize", "-m", path, "--special", "--jsonl"],
                                    input=json.dumps(prompt) + "\n", capture_output=True, text=True,
                                    check=True).stdout)
    dump = os.path.join(tmp, "logits.npy")
    subprocess.run([rabbit, "-q", "run", "-m", path, "--raw", "-p", prompt, "-n", str(steps), "--temp", "0",
                    "--repeat-penalty", "1", "--ignore-eos", "--device", os.environ.get("RABBIT_DEVICE", "cpu"),
                    "--act-quant", ACT_QUANT,
                    "--dump-logits", dump], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return ids, np.load(dump)


def compare(path, rabbit, prompt, steps):
    arch, layers, types = gguf_facts(path)
    tok, model = load(path)
    hf_ids = tok(prompt, add_special_tokens=True)["input_ids"]
    with tempfile.TemporaryDirectory() as tmp:
        ids, dumped = rabbit_run(rabbit, path, prompt, steps, tmp)
    p = len(ids)
    r_greedy = [int(x) for x in dumped[p - 1:].argmax(axis=1)][:steps]
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                             eos_token_id=None, pad_token_id=0)
        h_greedy = out[0, p:].tolist()
        # The reference of every row rabbit dumped: the prompt, then rabbit's own tokens.
        forced = torch.tensor([ids + r_greedy[:-1]])
        ref = model(forced).logits[0].double().numpy()
    got = dumped.astype(np.float64)
    if got.shape != ref.shape:
        raise SystemExit(f"{path}: rabbit dumped logits of shape {got.shape}, transformers gives {ref.shape}")
    if not np.isfinite(got).all():
        raise SystemExit(f"{path}: rabbit's logits are not all finite")
    diff = np.abs(got - ref)
    rms = float(np.sqrt(np.mean(ref * ref)))
    same = 0
    while same < steps and r_greedy[same] == h_greedy[same]:
        same += 1
    quantized = any(t not in ("F32", "F16", "BF16") for t in types)
    rounded = any(t in ROUNDED_TYPES for t in types) or (quantized and ACT_QUANT == "q8")
    tol = min(0.10, 0.02 * math.sqrt(max(layers, 2) / 2)) if rounded else 1e-4
    return {
        "file": path, "arch": arch, "layers": layers, "types": types,
        "prompt_ids": ids, "hf_prompt_ids": hf_ids, "tokenization_equal": ids == hf_ids,
        "rabbit_greedy": r_greedy, "hf_greedy": h_greedy, "greedy_equal": same == steps, "greedy_same_prefix": same,
        "max_abs_dlogit": float(diff.max()), "max_abs_dlogit_prompt": float(diff[:p].max()),
        "logit_rms": rms, "rel_max": float(diff.max()) / rms, "tolerance_rel": tol,
        "rel_rms": float(np.sqrt(np.mean(diff * diff))) / rms,
        "rel_rms_rows": [float(x) for x in np.sqrt(np.mean(diff * diff, axis=1)) / rms],
        "top1_agree": float(np.mean(got.argmax(axis=1) == ref.argmax(axis=1))),
    }


def complete_config(path, architecture):
    """What a config read from a GGUF lacks for other readers: `architectures` (transformers
    leaves it out), and rope_theta where transformers 5 keeps it only in rope_parameters."""
    with open(path) as f:
        c = json.load(f)
    c.setdefault("architectures", [architecture])
    if not c.get("architectures"):
        c["architectures"] = [architecture]
    rope = c.get("rope_parameters") or {}
    if "rope_theta" not in c and "rope_theta" in rope:
        c["rope_theta"] = rope["rope_theta"]
    c.pop("quantization_config", None)
    with open(path, "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")


def save_f32(path, out):
    from safetensors.torch import save_file
    tok, model = load(path)
    # transformers refuses to save a model it read from a GGUF ("quantized with gguf"): the
    # tensors are plain float32 by now, so they are written directly, with the config less its
    # quantization entry. A tied lm_head is left out, as save_pretrained does.
    os.makedirs(out, exist_ok=True)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    tensors = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in model.state_dict().items()
               if not (tied and k == "lm_head.weight")}
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.save_pretrained(out)
    complete_config(os.path.join(out, "config.json"), type(model).__name__)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out)
    tok.save_pretrained(out)
    print(f"wrote {out} (float32, dequantized from {path})")


def line(r, steps, ok):
    return (f"{os.path.basename(r['file']):32} {'yes' if r['greedy_equal'] else 'no':>5} {r['greedy_same_prefix']:>3}/{steps:<3}"
            f" {r['max_abs_dlogit']:9.3g} {r['logit_rms']:7.3g} {100 * r['rel_max']:8.3g}% {100 * r['rel_rms']:8.3g}%"
            f" {100 * r['tolerance_rel']:6.3g}% {100 * r['top1_agree']:6.0f}% {'equal' if r['tokenization_equal'] else 'DIFFER':>7}"
            f"  {'ok' if ok else 'FAIL'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf", nargs="+")
    ap.add_argument("--prompt", default="What is the capital of France?")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--rabbit", default=os.environ.get("RABBIT", os.path.join(REPO, "build", "rabbit")))
    ap.add_argument("--json", help="write the comparisons here, one JSON line per file")
    ap.add_argument("--require-greedy", action="append", default=[], metavar="FILE",
                    help="fail when FILE's greedy tokens differ (repeatable; 'all' for every file)")
    ap.add_argument("--save-f32", metavar="DIR", help="write the dequantized model as a float32 checkpoint instead")
    args = ap.parse_args()
    torch.set_num_threads(max(1, int(os.environ.get("THREADS", os.cpu_count() or 1))))
    if args.save_f32:
        save_f32(args.gguf[0], args.save_f32)
        return 0
    print(f"{'file':32} {'greedy':>5} {'same':>7} {'max|dlog|':>9} {'ref rms':>7} {'max/rms':>9} {'rms/rms':>9} {'tol':>7}"
          f" {'top-1':>7} {'prompt':>7}")
    failed = 0
    out = open(args.json, "w") if args.json else None
    for path in args.gguf:
        try:
            r = compare(path, args.rabbit, args.prompt, args.steps)
        except (subprocess.CalledProcessError, SystemExit, Exception) as e:  # one row per file, whatever fails
            msg = e.stderr.strip().splitlines()[-1] if getattr(e, "stderr", None) else str(e).splitlines()[0]
            print(f"{os.path.basename(path):32} FAIL: {msg}", flush=True)
            failed += 1
            continue
        must = "all" in args.require_greedy or any(os.path.samefile(path, f) for f in args.require_greedy)
        ok = r["rel_rms"] <= r["tolerance_rel"] and (r["greedy_equal"] or not must)
        failed += not ok
        print(line(r, args.steps, ok), flush=True)
        if out:
            out.write(json.dumps(r) + "\n")
            out.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
