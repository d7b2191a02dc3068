#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Does rabbit tokenize a GGUF's vocab as the original tokenizer does?

For a GGUF file (or a Hugging Face tokenizer turned into a vocab-only GGUF here by llama.cpp's
convert_hf_to_gguf.py), reads tokenizer.ggml.* with gguf-py, converts it with rabbit's own code
(build/rabbit-gguf-vocab: the function splitting a GGUF calls), tokenizes a corpus with
`rabbit tokenize` on the result, and counts the corpus lines whose ids differ from
  - the original Hugging Face tokenizer.json (--original DIR), and/or
  - transformers' own GGUF tokenizer (AutoTokenizer.from_pretrained(dir, gguf_file=...)), and
  - Hugging Face `tokenizers` reading rabbit's tokenizer.json (the files mean the same there).
Both without and with special tokens (BOS), and the decoded text of the reference ids.

    python scripts/gguf_tokenizer_check.py --gguf MODEL.gguf [--original DIR]
    python scripts/gguf_tokenizer_check.py --convert ../shared/tokenizers/qwen3 --original ../shared/tokenizers/qwen3
    python scripts/gguf_tokenizer_check.py --convert ../shared/models/tinystories-656k --original ../shared/models/tinystories-656k
Run with the venv's python (gguf, transformers, tokenizers). Exit status 1 when any count is
not zero (the transformers comparison only counts with --strict-transformers: it is known to
differ where the GGUF loses what the original had, see the report).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
LLAMA_CPP = os.path.expanduser("~/.cache/rabbit/peers/llama_cpp_python-0.3.36/vendor/llama.cpp")
# A config.json for a directory that holds only a tokenizer (the converter needs an architecture).
QWEN3_CONFIG = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 64,
                "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
                "num_key_value_heads": 1, "head_dim": 32, "max_position_embeddings": 4096,
                "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True}


def convert(hf_dir, work):
    """A vocab-only GGUF of hf_dir, by llama.cpp's converter."""
    src = os.path.join(work, "hf")
    os.makedirs(src)
    for name in os.listdir(hf_dir):
        if name.endswith(".json") or name == "tokenizer.model":
            shutil.copy(os.path.join(hf_dir, name), src)
    if not os.path.exists(os.path.join(src, "config.json")):
        if os.path.exists(os.path.join(src, "tokenizer.model")):  # SentencePiece: a Llama
            import sentencepiece
            sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(src, "tokenizer.model"))
            config = dict(QWEN3_CONFIG, architectures=["LlamaForCausalLM"], model_type="llama",
                          vocab_size=sp.vocab_size(), bos_token_id=sp.bos_id(), eos_token_id=sp.eos_id())
        else:
            n = len(json.load(open(os.path.join(src, "tokenizer.json"), encoding="utf-8"))["model"]["vocab"])
            config = dict(QWEN3_CONFIG, vocab_size=n + 293)  # Qwen3 pads to 151936
        with open(os.path.join(src, "config.json"), "w") as f:
            json.dump(config, f)
    out = os.path.join(work, "vocab.gguf")
    env = dict(os.environ, PYTHONPATH=os.path.join(LLAMA_CPP, "gguf-py"))
    subprocess.run([sys.executable, os.path.join(LLAMA_CPP, "convert_hf_to_gguf.py"), src, "--vocab-only",
                    "--outfile", out], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def read_vocab(path):
    """tokenizer.ggml.* as rabbit-gguf-vocab reads it."""
    import gguf
    r = gguf.GGUFReader(path)

    def get(key):
        f = r.fields.get("tokenizer.ggml." + key)
        return None if f is None else f.contents()

    v = {"model": get("model"), "pre": get("pre"), "tokens": get("tokens"), "scores": get("scores"),
         "token_type": get("token_type"), "merges": get("merges"), "bos": get("bos_token_id"),
         "eos": get("eos_token_id"), "unk": get("unknown_token_id"), "pad": get("padding_token_id"),
         "eot": get("eot_token_id"), "add_bos": get("add_bos_token"), "add_eos": get("add_eos_token"),
         "add_space_prefix": get("add_space_prefix")}
    f = r.fields.get("tokenizer.chat_template")
    v["chat_template"] = None if f is None else f.contents()
    return v


def vocab_from_json(directory, pre):
    """A byte-level tokenizer.json as a gpt2 GGUF vocab would hold it, for the pre types the
    converter has no tokenizer here to recognise (its hash list names real models only)."""
    d = json.load(open(os.path.join(directory, "tokenizer.json"), encoding="utf-8"))
    by_id = {i: t for t, i in d["model"]["vocab"].items()}
    types = {}
    for a in d.get("added_tokens", []):
        by_id[a["id"]] = a["content"]
        types[a["id"]] = 3 if a["special"] else 4
    n = max(by_id) + 1
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(n)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in d["model"]["merges"]]
    bos = None
    post = json.dumps(d.get("post_processor"))
    for i, t in by_id.items():
        if types.get(i) == 3 and json.dumps(t) in post:
            bos = i
    return {"model": "gpt2", "pre": pre, "tokens": tokens, "token_type": [types.get(i, 1) for i in range(n)],
            "merges": merges, "bos": bos, "add_bos": bos is not None}


def rabbit_lines(rabbit, model_dir, lines, *flags):
    p = subprocess.run([rabbit, "tokenize", "-m", model_dir, *flags], input="".join(l + "\n" for l in lines),
                       capture_output=True, text=True, check=True)
    return [json.loads(l) for l in p.stdout.split("\n") if l]  # not splitlines: U+2028 is no line end here


def compare(name, got, want, texts, failures):
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    print(f"  {name}: {len(bad)} of {len(want)} lines differ")
    for i in bad[:3]:
        print(f"    line {i + 1}: {texts[i][:60]!r}\n      rabbit {str(got[i])[:150]}\n      ref    {str(want[i])[:150]}")
    failures.append((name, len(bad)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--gguf", help="a GGUF file")
    src.add_argument("--convert", help="a Hugging Face tokenizer directory to make a vocab-only GGUF of")
    src.add_argument("--from-json", help="a byte-level tokenizer.json directory, read as a gpt2 vocab with --pre")
    ap.add_argument("--pre", default="gpt-2", help="with --from-json: the tokenizer.ggml.pre to give it")
    ap.add_argument("--ref", help="reference ids (a *.ref.jsonl of tests/data/tokenizer: ids, special_ids, decoded)")
    ap.add_argument("--original", help="the original Hugging Face tokenizer directory")
    ap.add_argument("--no-transformers", action="store_true", help="skip transformers' GGUF tokenizer")
    ap.add_argument("--strict-transformers", action="store_true", help="count transformers' differences too")
    ap.add_argument("--corpus", default=os.path.join(REPO, "tests", "data", "tokenizer", "corpus.jsonl"))
    ap.add_argument("--build", default=os.path.join(REPO, "build-emu"))
    ap.add_argument("--keep", help="write rabbit's files into this directory and keep them")
    a = ap.parse_args()

    from tokenizers import Tokenizer
    texts = [json.loads(l) for l in open(a.corpus, encoding="utf-8")]
    lines = [json.dumps(t, ensure_ascii=False) for t in texts]
    rabbit = os.path.join(a.build, "rabbit")
    work = tempfile.mkdtemp(prefix="gguf-tok-")
    try:
        path = a.gguf or (convert(a.convert, work) if a.convert else None)
        vocab = read_vocab(path) if path else vocab_from_json(a.from_json, a.pre)
        path = path or a.from_json
        print(f"{path}: model {vocab['model']}, pre {vocab['pre']!r}, {len(vocab['tokens'])} tokens, "
              f"{len(vocab['merges'] or [])} merges, add_bos {vocab['add_bos']}")
        vocab_json = os.path.join(work, "vocab.json")
        with open(vocab_json, "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False)
        out = a.keep or os.path.join(work, "rabbit")
        subprocess.run([os.path.join(a.build, "rabbit-gguf-vocab"), vocab_json, out], check=True)

        plain = rabbit_lines(rabbit, out, lines, "--jsonl")
        special = rabbit_lines(rabbit, out, lines, "--jsonl", "--special")
        failures, soft = [], []
        ours = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
        print("rabbit vs Hugging Face tokenizers reading rabbit's tokenizer.json:")
        compare("ids", plain, [ours.encode(t, add_special_tokens=False).ids for t in texts], texts, failures)
        if a.original:
            # `tokenizers` itself, as tests/data/tokenizer/*.ref.jsonl (transformers 5 rebuilds
            # some pipelines, e.g. LlamaTokenizer's, instead of reading tokenizer.json).
            orig = Tokenizer.from_file(os.path.join(a.original, "tokenizer.json"))
            want = [orig.encode(t, add_special_tokens=False).ids for t in texts]
            print(f"rabbit vs the original ({a.original}):")
            compare("ids", plain, want, texts, failures)
            compare("ids with special tokens", special, [orig.encode(t).ids for t in texts], texts, failures)
            decoded = rabbit_lines(rabbit, out, [json.dumps(w) for w in want], "--decode")
            compare("decoded", decoded, [orig.decode(w, skip_special_tokens=True) for w in want], texts, failures)
        if a.ref:
            refs = [json.loads(l) for l in open(a.ref, encoding="utf-8")]
            stride = len(texts) // len(refs)  # synthetic references hold every 4th corpus line
            sub = texts[::stride][:len(refs)]
            print(f"rabbit vs {a.ref} (every {stride} corpus line):")
            compare("ids", plain[::stride], [r["ids"] for r in refs], sub, failures)
            compare("ids with special tokens", special[::stride], [r["special_ids"] for r in refs], sub, failures)
            decoded = rabbit_lines(rabbit, out, [json.dumps(r["ids"]) for r in refs], "--decode")
            compare("decoded", decoded, [r["decoded"] for r in refs], sub, failures)
        ref = None
        if not a.no_transformers and a.from_json is None:
            from transformers import AutoTokenizer
            try:
                ref = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(path)),
                                                    gguf_file=os.path.basename(path))
            except Exception as e:  # transformers' own GGUF support has gaps (Qwen3's vocab, for one)
                print(f"transformers cannot load the GGUF's tokenizer: {type(e).__name__}: {e}")
                ref = None
        if not a.no_transformers and ref is not None:
            print("rabbit vs transformers' GGUF tokenizer:")
            compare("ids", plain, [ref.encode(t, add_special_tokens=False) for t in texts], texts,
                    failures if a.strict_transformers else soft)
            compare("ids with special tokens", special, [ref.encode(t) for t in texts], texts,
                    failures if a.strict_transformers else soft)
        bad = sum(n for _, n in failures)
        print("OK" if bad == 0 else f"FAIL: {bad} differing lines")
        return 0 if bad == 0 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
