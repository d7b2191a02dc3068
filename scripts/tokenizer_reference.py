#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The reference ids of the tokenizer conformance test, from Hugging Face `tokenizers` itself.

For every line of tests/data/tokenizer/corpus.jsonl and each subject tokenizer (Qwen's real
tokenizer in ../shared/tokenizers/qwen3, tinystories-656k's), writes
tests/data/tokenizer/<name>.ref.jsonl, one object per corpus line:
    ids          encode(text, add_special_tokens=False)
    special_ids  encode(text, add_special_tokens=True)
    decoded      decode(ids, skip_special_tokens=True)
    decoded_all  decode(ids, skip_special_tokens=False)
and, for Qwen, qwen3.chat.jsonl: the model's own chat template rendered by jinja2 (as
transformers does) for a few conversations, with the ids of the rendering.

    python scripts/tokenizer_reference.py          regenerate the files
    python scripts/tokenizer_reference.py --check  compare with the committed files (CI)
Run it in the venv of scripts/venv.sh (tokenizers and jinja2 pinned there).
"""
import argparse
import json
import os
import sys

import io

import jinja2
import jinja2.ext
import jinja2.sandbox
import sentencepiece
import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared"))
DATA = os.path.join(REPO, "tests", "data", "tokenizer")

SUBJECTS = {
    "qwen3": os.path.join(SHARED, "tokenizers", "qwen3"),
    "tinystories": os.path.join(SHARED, "models", "tinystories-656k"),
}

CHATS = [
    ("Hello!", None),
    ("What is the capital of France?", None),
    ("Write a haiku about rabbits.", "You are a poet."),
    ("多行\n文本", "系统提示"),
    ("Tell me about <think> tags.", "Be brief.\nUse lists."),
]


def render_chat(template, user, system):
    """Renders a chat template the way transformers' apply_chat_template does."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                        extensions=[jinja2.ext.loopcontrols])

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False: json.dumps(x, indent=indent, ensure_ascii=ensure_ascii)
    env.globals["raise_exception"] = raise_exception
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [{"role": "user", "content": user}]
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, tools=None)


SYNTHETIC_STRIDE = 4  # synthetic tokenizers are checked on every 4th corpus line


def train(corpus, model, normalizer=None, pre_tokenizer=None, decoder=None, vocab_size=800,
          specials=("<unk>", "<s>", "</s>")):
    tok = Tokenizer(model)
    if normalizer is not None:
        tok.normalizer = normalizer
    if pre_tokenizer is not None:
        tok.pre_tokenizer = pre_tokenizer
    if decoder is not None:
        tok.decoder = decoder
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials), limit_alphabet=300,
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    return tok


def with_json(tok, edit):
    """The tokenizer after an edit of its JSON (what the Python API cannot express)."""
    d = json.loads(tok.to_str())
    edit(d)
    return Tokenizer.from_str(json.dumps(d, ensure_ascii=False))


def add_byte_tokens(d):
    vocab = d["model"]["vocab"]
    n = max(vocab.values()) + 1
    for b in range(256):
        vocab["<0x%02X>" % b] = n + b


def legacy_merges(d):
    d["model"]["merges"] = [" ".join(m) for m in d["model"]["merges"]]


LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def synthetic(corpus):
    """Small tokenizers trained here, one per pipeline kind the real ones do not cover."""
    out = {}
    # SentencePiece converted: Metaspace (prepend "first", no split), byte fallback, fused unk.
    tok = train(corpus, models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True),
                pre_tokenizer=pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False),
                decoder=decoders.Sequence([decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=False),
                                           decoders.ByteFallback(), decoders.Fuse()]))
    tok = with_json(tok, add_byte_tokens)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    out["metaspace-first"] = tok
    # Metaspace that always prepends and splits; unk not fused.
    out["metaspace-always"] = train(
        corpus, models.BPE(unk_token="<unk>", fuse_unk=False),
        pre_tokenizer=pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
        decoder=decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True))
    # Llama 3's byte-level split, with ignore_merges and a BOS template.
    tok = train(corpus, models.BPE(ignore_merges=True),
                pre_tokenizer=pre_tokenizers.Sequence([
                    pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
                decoder=decoders.ByteLevel(), specials=("<|begin_of_text|>", "<|end_of_text|>"))
    tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False),
                                              processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                                            special_tokens=[("<|begin_of_text|>", 0)])])
    out["llama3-style"] = tok
    # GPT-2: ByteLevel with its own regex and a prefix space, legacy "a b" merges, added tokens
    # that strip, match single words, or are normalized.
    tok = train(corpus, models.BPE(), normalizer=normalizers.NFC(),
                pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True), decoder=decoders.ByteLevel())
    tok = with_json(tok, legacy_merges)
    from tokenizers import AddedToken
    tok.add_special_tokens([AddedToken("<|im_end|>", lstrip=True, rstrip=True, normalized=False)])
    tok.add_tokens([AddedToken("rabbit", single_word=True, normalized=True),
                    AddedToken("<think>", rstrip=True, normalized=False),
                    AddedToken("caf\u00e9", normalized=True)])
    out["gpt2-added"] = tok
    # Every split behavior, inverted patterns, Digits, and normalizers that rewrite the text.
    out["splits-digits"] = train(
        corpus, models.BPE(unk_token="<unk>"),
        normalizer=normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex("[0-9]{5,}"), "#"),
                                         normalizers.Replace("  ", " "), normalizers.Prepend("\u2581")]),
        pre_tokenizer=pre_tokenizers.Sequence([
            pre_tokenizers.Split(" ", behavior="merged_with_previous"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Split(Regex("[,.;:]"), behavior="merged_with_next"),
            pre_tokenizers.Split(Regex("\\p{Lu}+"), behavior="contiguous", invert=True),
            pre_tokenizers.Split(Regex("\\s+"), behavior="removed"),
            pre_tokenizers.Split(Regex("\\w+"), behavior="isolated", invert=True)]),
        decoder=decoders.Sequence([decoders.Replace("\u2581", " "), decoders.Strip(" ", 1, 0)]))
    out["digits-contiguous"] = train(
        corpus, models.BPE(unk_token="<unk>", fuse_unk=True),
        pre_tokenizer=pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=False),
                                               pre_tokenizers.Split(Regex("\\s"), behavior="isolated")]),
        decoder=decoders.Fuse())
    return out


def sentencepiece_model(corpus):
    """A small SentencePiece BPE model, for the directory that has only tokenizer.model."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter([s for s in corpus if s.strip()]), model_writer=model,
                                             vocab_size=1200, model_type="bpe", character_coverage=0.98,
                                             byte_fallback=True, num_threads=1, minloglevel=2)
    return model.getvalue()


def sentencepiece_lines(model, corpus):
    sp = sentencepiece.SentencePieceProcessor(model_proto=model)
    out = []
    for text in corpus:
        ids = sp.encode(text)
        out.append(json.dumps({"ids": ids, "special_ids": [sp.bos_id()] + ids, "decoded": sp.decode(ids)},
                              ensure_ascii=False))
    return out


def lines_for(tok, corpus):
    out = []
    for text in corpus:
        ids = tok.encode(text, add_special_tokens=False).ids
        special = tok.encode(text, add_special_tokens=True).ids
        out.append(json.dumps({
            "ids": ids,
            "special_ids": special,
            "decoded": tok.decode(ids, skip_special_tokens=True),
            "decoded_all": tok.decode(ids, skip_special_tokens=False),
        }, ensure_ascii=False))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="compare with the committed files instead of writing them")
    args = ap.parse_args()

    with open(os.path.join(DATA, "corpus.jsonl"), encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f]
    outputs = {}
    for name, directory in SUBJECTS.items():
        if not os.path.exists(os.path.join(directory, "tokenizer.json")):
            if not args.check:
                sys.exit("%s: no tokenizer.json (the shared tokenizers beside the repository)" % directory)
            print("SKIPPED %s: %s is not in this clone" % (name, directory))
            continue
        tok = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        outputs[name + ".ref.jsonl"] = lines_for(tok, corpus)
        if name == "qwen3":
            with open(os.path.join(directory, "tokenizer_config.json"), encoding="utf-8") as f:
                template = json.load(f)["chat_template"]
            chat = []
            for user, system in CHATS:
                rendered = render_chat(template, user, system)
                chat.append(json.dumps({"user": user, "system": system, "rendered": rendered,
                                        "ids": tok.encode(rendered, add_special_tokens=False).ids}, ensure_ascii=False))
            outputs["qwen3.chat.jsonl"] = chat

    subset = corpus[::SYNTHETIC_STRIDE]
    # Training is not deterministic (ties between equally frequent pairs), so --check reads the
    # committed synthetic tokenizers instead of training them again.
    if args.check:
        names = sorted(os.listdir(os.path.join(DATA, "synthetic")))
        trained = {n: Tokenizer.from_file(os.path.join(DATA, "synthetic", n, "tokenizer.json")) for n in names}
    else:
        trained = synthetic(corpus)
        for name, tok in trained.items():
            outputs["synthetic/%s/tokenizer.json" % name] = [tok.to_str(pretty=True)]
    for name, tok in trained.items():
        outputs["synthetic/%s/ref.jsonl" % name] = lines_for(tok, subset)

    sp_path = os.path.join(DATA, "sentencepiece", "tokenizer.model")
    if args.check:
        with open(sp_path, "rb") as f:
            sp_model = f.read()  # training is checked by the ids it gives, not byte for byte
    else:
        sp_model = sentencepiece_model(corpus)
        os.makedirs(os.path.dirname(sp_path), exist_ok=True)
        with open(sp_path, "wb") as f:
            f.write(sp_model)
    outputs["sentencepiece/ref.jsonl"] = sentencepiece_lines(sp_model, subset)

    bad = 0
    for fname, lines in outputs.items():
        path = os.path.join(DATA, fname)
        text = "\n".join(lines) + "\n"
        if args.check:
            with open(path, encoding="utf-8") as f:
                committed = f.read()
            if committed != text:
                bad += 1
                print("%s differs from what tokenizers %s gives now" % (path, tokenizers.__version__))
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            print("wrote %s (%d lines)" % (os.path.relpath(path, REPO), len(lines)))
    if args.check and not bad:
        print("reference ids unchanged with tokenizers %s (%d corpus lines)" % (tokenizers.__version__, len(corpus)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
