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
  BF16 weights on a processor with AVX512_BF16 (unless RABBIT_ISA=avx512 or lower, which
    keeps f32 activations: 1e-4 again), and quantized weights under `--act-quant q8`
    (RABBIT_ACT_QUANT=q8 here): rabbit rounds each product's input activations, to bf16, or
    like llama.cpp to 8 bits per block of 32 (256 for the k-quants). docs/ARCHITECTURE.md
    measures what one rounding costs: a relative RMS error of the product of 0.4 % (blocks of
    32) to 1.7 % (SwiGLU outputs in 256-blocks), tools/qbench/q8_error.py on SmolLM2's real
    activations. An estimate, not a bound: with up to 2 % from the products of the first
    layers, and errors independent from layer to layer that the residual stream carries on,
    the logits' relative RMS error grows as 2 % * sqrt(L / 2) over L layers, capped at 10 %.
    docs/BENCHMARKS.md has the measured values beside it.

Two routes to the reference, neither using rabbit's code:
  transformers (default): `from_pretrained(gguf_file=...)`, transformers' own GGUF loader
    (gguf-py's dequantize, its own name mapping, config and tokenizer from the metadata).
  gguf-py (`--via-gguf-py FILE|all|auto`): scripts/gguf_hf_checkpoint.py dequantizes every tensor
    with gguf-py, undoes the converter's names (and llama's q/k row permutation), writes a
    float32 safetensors checkpoint with the config and tokenizer of the checkpoint the GGUF was
    made from (the `hf` folder beside it, or --hf-dir), and plain transformers loads that; the
    loaded parameters are checked equal to the dequantized tensors. For the files
    transformers' GGUF loader reads wrongly or not at all; `auto` picks them
    (transformers_misreads says how).
  `--both-routes FILE` runs both on FILE and prints how far the two references are apart.
The prompt's tokenization is compared with the reference's tokenizer: the GGUF's for the
first route, the original checkpoint's tokenizer.json for the second.

Cost: gguf-py's GGUFReader takes ~10 s to parse a 151936-token vocabulary (300k strings), and
transformers' loader alone builds a reader four times per file (config, tokenizer, tensors);
the tokenizer from a GGUF takes ~8 s more to convert. One reader per file is shared here by
everything (transformers included), and the tokenizer is converted once per distinct
tokenizer.ggml.* metadata (compared byte for byte): the 42-file matrix took 19 minutes on two
shared cores, against 2 to 5 minutes a file before.

`--compare-loaders` prints, instead, where the two routes' models differ on each file (config
entries, and each parameter's largest difference).

`--save-f32 DIR` writes the dequantized model as a float32 Hugging Face checkpoint
(safetensors) with its tokenizer, for scripts/perplexity.sh.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import hashlib
import tempfile
import time

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
ACT_QUANT = os.environ.get("RABBIT_ACT_QUANT", "f32")  # rabbit run --act-quant
# Activations rounded to bf16 on AVX512_BF16, whatever --act-quant says; RABBIT_ISA=avx512 (or
# lower) keeps them f32 against the bf16 weights, under f32's tolerance.
ROUNDED_TYPES = set() if os.environ.get("RABBIT_ISA") in ("avx512", "avx2", "portable") else {"BF16"}
sys.path.insert(0, HERE)
import gguf  # noqa: E402
import gguf_hf_checkpoint  # noqa: E402

_READER_CLASS = gguf.GGUFReader
_READERS = {}  # one file's reader at a time: realpath -> GGUFReader
_TOKENIZERS = {}  # (architecture, digest of the tokenizer.ggml.* bytes) -> tokenizer


def reader(path, *args, **kwargs):
    """The file's GGUFReader, parsed once (read-only memory map; nobody writes to it)."""
    key = os.path.realpath(path)
    if key not in _READERS:
        _READERS.clear()
        _READERS[key] = _READER_CLASS(path, *args, **kwargs)
    return _READERS[key]


gguf.GGUFReader = reader  # transformers imports it from gguf at each load


def gguf_facts(path):
    """The GGUF's block count and its weight types, read with gguf-py."""
    r = reader(path)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    layers = int(r.fields[arch + ".block_count"].parts[-1][0])
    types = sorted({t.tensor_type.name for t in r.tensors if len(t.shape) > 1})
    return arch, layers, types


def tokenizer_digest(r, arch):
    """The bytes of every tokenizer.ggml.* key-value pair of the file, hashed: two files with
    the same digest make the same transformers tokenizer."""
    starts = sorted([f.offset for f in r.fields.values()] + [r.tensors[0].field.offset])
    h = hashlib.sha256(arch.encode())
    for name, f in r.fields.items():
        if name.startswith("tokenizer."):
            end = next(o for o in starts if o > f.offset)
            h.update(bytes(r.data[f.offset:end]))
    return h.hexdigest()


def transformers_misreads(path):
    """Why transformers' GGUF loader would not give this file's model, or None. The two cases
    met in the matrix, both seen with transformers 5.23:
    - its config from the file disagrees with the file's own head_dim (attention.key_length):
      its qwen3 mapping has no attention.key_length, so Qwen3Config's default head_dim of 128
      stands and the load stops on a size mismatch;
    - an output.weight without token_embd.weight (what the converter makes of a tied checkpoint
      that holds only lm_head.weight, as tinystories-656k): it sets tie_word_embeddings false
      whenever output.weight is present, and leaves the embedding at random."""
    from transformers import AutoConfig
    r = reader(path)
    arch = gguf_hf_checkpoint.field(r, "general.architecture")
    names = {t.name for t in r.tensors}
    if "output.weight" in names and "token_embd.weight" not in names:
        return "output.weight without token_embd.weight, which transformers loads untied with a random embedding"
    key_length = gguf_hf_checkpoint.field(r, f"{arch}.attention.key_length")
    d, name = os.path.split(os.path.abspath(path))
    c = AutoConfig.from_pretrained(d, gguf_file=name)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    if key_length and head_dim != key_length:
        return f"transformers' config from it has head_dim {head_dim}, the file's attention.key_length is {key_length}"
    return None


def load_transformers(path):
    d, name = os.path.split(os.path.abspath(path))
    arch = gguf_facts(path)[0]
    key = (arch, tokenizer_digest(reader(path), arch))
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model, info = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32, output_loading_info=True)
    # transformers initializes what it did not find at random and says so only in a warning
    missing = info.get("missing_keys") or []
    if missing:
        raise ValueError(f"{path}: transformers' GGUF loader left {', '.join(sorted(missing))} at random "
                         f"(tie_word_embeddings {model.config.tie_word_embeddings}); use --via-gguf-py")
    model.eval()
    apply_rope_freqs(path, model, scaled=False)
    return _TOKENIZERS[key], model


def load_gguf_py(path, hf_dir=None):
    """gguf_hf_checkpoint's float32 checkpoint of the file, loaded by plain transformers, with
    every parameter checked equal to what gguf-py dequantized."""
    with tempfile.TemporaryDirectory(prefix="gguf-hf-") as tmp:
        hf_dir, tensors = gguf_hf_checkpoint.write_checkpoint(reader(path), path, tmp, hf_dir)
        model, info = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}  # missing, unexpected, mismatched keys, errors
    if bad:
        raise ValueError(f"{path}: transformers loaded the gguf-py checkpoint with {bad}")
    params = model.state_dict()
    for name, w in tensors.items():
        if not torch.equal(params[name], torch.from_numpy(w)):
            raise ValueError(f"{path}: transformers' {name} is not the dequantized tensor")
    if model.config.tie_word_embeddings and not torch.equal(params["model.embed_tokens.weight"], params["lm_head.weight"]):
        raise ValueError(f"{path}: tied embedding and lm_head differ after loading")
    model.eval()
    apply_rope_freqs(path, model, scaled=True)
    return AutoTokenizer.from_pretrained(hf_dir), model


def apply_rope_freqs(path, model, scaled):
    """Llama 3 RoPE scaling, which llama.cpp's converter stores as the tensor rope_freqs.weight
    (a divisor per frequency): the unscaled frequencies divided by it, as llama.cpp runs them.
    transformers' GGUF loader leaves the tensor out and runs unscaled RoPE (SCALED false); a
    model loaded with the original config has the llama3 rule's frequencies (SCALED true),
    which must agree with the tensor's to within float rounding."""
    t = [t for t in reader(path).tensors if t.name == "rope_freqs.weight"]
    if not t:
        return
    rope = model.model.rotary_emb
    factors = torch.tensor(np.array(t[0].data, dtype=np.float32))
    cfg = model.config
    dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta") or cfg.rope_theta
    plain = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).to(torch.float) / dim))
    if scaled:
        off = float(((rope.inv_freq - plain / factors).abs() / rope.inv_freq).max())
        if off > 1e-6:
            raise ValueError(f"{path}: rope_freqs.weight disagrees with the config's RoPE scaling by {off:.3g}")
    else:
        plain = rope.inv_freq
    rope.inv_freq = plain / factors
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


def reference(model, ids, r_greedy, steps):
    """The model's own greedy tokens after IDS, and its logits on IDS followed by rabbit's
    tokens: [prompt + steps - 1, vocab] in double."""
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                             eos_token_id=None, pad_token_id=0)
        h_greedy = out[0, len(ids):].tolist()
        # The reference of every row rabbit dumped: the prompt, then rabbit's own tokens.
        forced = torch.tensor([ids + r_greedy[:-1]])
        return h_greedy, model(forced).logits[0].double().numpy()


def compare(path, rabbit, prompt, steps, routes, hf_dir=None):
    """One result per route in ROUTES ("transformers", "gguf-py"); with two, the last also
    says how far the two references are apart."""
    arch, layers, types = gguf_facts(path)
    with tempfile.TemporaryDirectory() as tmp:
        ids, dumped = rabbit_run(rabbit, path, prompt, steps, tmp)
    p = len(ids)
    r_greedy = [int(x) for x in dumped[p - 1:].argmax(axis=1)][:steps]
    got = dumped.astype(np.float64)
    if not np.isfinite(got).all():
        raise SystemExit(f"{path}: rabbit's logits are not all finite")
    quantized = any(t not in ("F32", "F16", "BF16") for t in types)
    rounded = any(t in ROUNDED_TYPES for t in types) or (quantized and ACT_QUANT == "q8")
    tol = min(0.10, 0.02 * math.sqrt(max(layers, 2) / 2)) if rounded else 1e-4
    results, refs = [], []
    for route in routes:
        t0 = time.time()
        tok, model = load_transformers(path) if route == "transformers" else load_gguf_py(path, hf_dir)
        hf_ids = tok(prompt, add_special_tokens=True)["input_ids"]
        h_greedy, ref = reference(model, ids, r_greedy, steps)
        del model
        if got.shape != ref.shape:
            raise SystemExit(f"{path}: rabbit dumped logits of shape {got.shape}, the {route} reference gives {ref.shape}")
        diff = np.abs(got - ref)
        rms = float(np.sqrt(np.mean(ref * ref)))
        same = 0
        while same < steps and r_greedy[same] == h_greedy[same]:
            same += 1
        results.append({
            "file": path, "route": route, "arch": arch, "layers": layers, "types": types,
            "prompt_ids": ids, "hf_prompt_ids": hf_ids, "tokenization_equal": ids == hf_ids,
            "rabbit_greedy": r_greedy, "hf_greedy": h_greedy, "greedy_equal": same == steps, "greedy_same_prefix": same,
            "max_abs_dlogit": float(diff.max()), "max_abs_dlogit_prompt": float(diff[:p].max()),
            "logit_rms": rms, "rel_max": float(diff.max()) / rms, "tolerance_rel": tol,
            "rel_rms": float(np.sqrt(np.mean(diff * diff))) / rms,
            "rel_rms_rows": [float(x) for x in np.sqrt(np.mean(diff * diff, axis=1)) / rms],
            "top1_agree": float(np.mean(got.argmax(axis=1) == ref.argmax(axis=1))),
            "seconds": time.time() - t0,
        })
        refs.append(ref)
    if len(refs) == 2:
        d = refs[0] - refs[1]
        results[-1]["routes_rel_rms"] = float(np.sqrt(np.mean(d * d))) / results[0]["logit_rms"]
        results[-1]["routes_max_abs"] = float(np.abs(d).max())
    return results


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
    tok, model = load_transformers(path)
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


def compare_loaders(path, hf_dir=None):
    """Where transformers' GGUF loader and the gguf-py route part on PATH: the config entries
    that differ, and every parameter's largest difference (a tensor missing on one side says
    so). Printed, for a file whose two references disagree."""
    from transformers import AutoConfig
    d, name = os.path.split(os.path.abspath(path))
    with tempfile.TemporaryDirectory(prefix="gguf-hf-") as tmp:
        hf_dir, tensors = gguf_hf_checkpoint.write_checkpoint(reader(path), path, tmp, hf_dir)
    theirs = AutoConfig.from_pretrained(d, gguf_file=name).to_dict()
    ours = AutoConfig.from_pretrained(hf_dir).to_dict()
    skip = {"transformers_version", "_name_or_path", "torch_dtype", "dtype", "architectures", "quantization_config"}
    for k in sorted(set(theirs) | set(ours)):
        if k not in skip and theirs.get(k) != ours.get(k):
            print(f"config {k:30} transformers' GGUF loader: {theirs.get(k)!r:24} checkpoint: {ours.get(k)!r}")
    model, info = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32, output_loading_info=True)
    print(f"transformers' loading info: { {k: v for k, v in info.items() if v} }")
    params = model.state_dict()
    for k in sorted(set(params) | set(tensors)):
        if k not in params:
            print(f"{k:48} not in transformers' model")
            continue
        # the checkpoint route ties a missing embedding to lm_head: compare with that
        mine = tensors.get(k, tensors.get("lm_head.weight") if k == "model.embed_tokens.weight" else None)
        if mine is None:
            print(f"{k:48} only in transformers' model")
            continue
        a, b = params[k].double().numpy(), mine.astype(np.float64)
        if k not in tensors:
            k += " (against lm_head, tied)"
        diff = f"max |d| {np.abs(a - b).max():.3g}" if a.shape == b.shape else f"shape {a.shape} vs {b.shape}"
        print(f"{k:48} {diff}")


def line(r, steps, ok):
    via = "" if r["route"] == "transformers" else " (gguf-py)"
    text = (f"{os.path.basename(r['file']) + via:42} {'yes' if r['greedy_equal'] else 'no':>5} {r['greedy_same_prefix']:>3}/{steps:<3}"
            f" {r['max_abs_dlogit']:9.3g} {r['logit_rms']:7.3g} {100 * r['rel_max']:8.3g}% {100 * r['rel_rms']:8.3g}%"
            f" {100 * r['tolerance_rel']:6.3g}% {100 * r['top1_agree']:6.0f}% {'equal' if r['tokenization_equal'] else 'DIFFER':>7}"
            f"  {'ok' if ok else 'FAIL'}")
    if "routes_rel_rms" in r:
        text += (f"\n{'':42} the two references: max |d| {r['routes_max_abs']:.3g}, RMS of d / RMS"
                 f" {100 * r['routes_rel_rms']:.3g}%")
    return text


def named(path, files):
    return "all" in files or any(os.path.exists(f) and os.path.samefile(path, f) for f in files)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf", nargs="+")
    ap.add_argument("--prompt", default="What is the capital of France?")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--rabbit", default=os.environ.get("RABBIT", os.path.join(REPO, "build", "rabbit")))
    ap.add_argument("--json", help="write the comparisons here, one JSON line per file")
    ap.add_argument("--require-greedy", action="append", default=[], metavar="FILE",
                    help="fail when FILE's greedy tokens differ (repeatable; 'all' for every file)")
    ap.add_argument("--via-gguf-py", action="append", default=[], metavar="FILE",
                    help="the reference of FILE by the gguf-py route (repeatable; 'all' for every file; 'auto' for"
                         " the files transformers' GGUF loader misreads)")
    ap.add_argument("--both-routes", action="append", default=[], metavar="FILE",
                    help="FILE by both routes, and the two references compared (repeatable; 'all')")
    ap.add_argument("--hf-dir", help="the gguf-py route's checkpoint folder (default: the hf folder beside each file)")
    ap.add_argument("--save-f32", metavar="DIR", help="write the dequantized model as a float32 checkpoint instead")
    ap.add_argument("--compare-loaders", action="store_true",
                    help="print where transformers' GGUF loader and the gguf-py route differ on the file, instead")
    args = ap.parse_args()
    torch.set_num_threads(max(1, int(os.environ.get("THREADS", os.cpu_count() or 1))))
    if args.save_f32:
        save_f32(args.gguf[0], args.save_f32)
        return 0
    if args.compare_loaders:
        for path in args.gguf:
            print(f"== {path}")
            compare_loaders(path, args.hf_dir)
        return 0
    print(f"{'file':42} {'greedy':>5} {'same':>7} {'max|dlog|':>9} {'ref rms':>7} {'max/rms':>9} {'rms/rms':>9} {'tol':>7}"
          f" {'top-1':>7} {'prompt':>7}")
    failed = 0
    out = open(args.json, "w") if args.json else None
    for path in args.gguf:
        routes = (["transformers", "gguf-py"] if named(path, args.both_routes)
                  else ["gguf-py"] if named(path, args.via_gguf_py) else ["transformers"])
        try:
            why = transformers_misreads(path) if "auto" in args.via_gguf_py and routes == ["transformers"] else None
            if why:
                routes = ["gguf-py"]
                print(f"{os.path.basename(path):42} by gguf-py: {why}", flush=True)
            results = compare(path, args.rabbit, args.prompt, args.steps, routes, args.hf_dir)
        except (subprocess.CalledProcessError, SystemExit, Exception) as e:  # one row per file, whatever fails
            msg = e.stderr.strip().splitlines()[-1] if getattr(e, "stderr", None) else str(e).splitlines()[0]
            print(f"{os.path.basename(path):42} FAIL: {msg}", flush=True)
            failed += 1
            continue
        for r in results:
            ok = r["rel_rms"] <= r["tolerance_rel"] and (r["greedy_equal"] or not named(path, args.require_greedy))
            failed += not ok
            print(line(r, args.steps, ok), flush=True)
            if out:
                out.write(json.dumps(r) + "\n")
                out.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
