#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Measure rabbit's Python layer-streaming peers on one machine, model and budget.

    scripts/bench_peers.sh MODEL_DIR [options]      (finds the venv, then runs this file)
    python scripts/bench_peers.py MODEL_DIR [options]

Peers (--peers, default all three, in this order):
  rabbitllm   RabbitLLM (PyPI `rabbitllm`, an AirLLM fork): splits the checkpoint into one
              safetensors file per layer, then every forward (prefill and each decoded token)
              reads every layer from those files, runs it and frees it. No RAM/VRAM budget
              knob: it always streams (cache_layers stays None, so nothing is kept between
              forwards). max_seq_len is set to prompt+gen (its default, 512, caps the context).
  airllm      AirLLM 4.x (PyPI `airllm`): splits likewise, builds the transformers model on the
              meta device and streams each decoder layer in through forward hooks (loaded from
              its file before the layer runs, sent back to meta after); a tied embedding stays
              resident. Prefetches the next layer on a thread. No budget knob either.
              Both call clean_memory() (gc.collect + malloc_trim + cuda.empty_cache) after every
              layer: on CPU that full gc.collect, ~0.25 s each, is most of their decode time.
  accelerate  transformers from_pretrained(device_map="auto", max_memory=..., offload_folder=...):
              what does not fit the budget is offloaded ('cpu' tier on GPU runs, 'disk' tier
              below the RAM budget) and brought in per forward by accelerate's hooks.

Each peer runs in a subprocess of its own (so peak RSS does not mix), twice: a 'prepare'
process splits the model into the peer's cache (timed, reported as split_s, never inside the
timings), then the 'measure' process loads it and runs 1 warm-up + --repeat runs of: prefill
of --prompt-len token ids (seeded random ids, the same for every peer), then --gen greedy
decode steps, each feeding back the argmax token with the KV cache. All peers are driven through
their model's forward(input_ids, past_key_values, use_cache) by the same loop here, not through
their generate() (RabbitLLM's generate() breaks on transformers >= 5.3; driving forward directly
also times prefill and decode apart identically for all). Reported: median prefill seconds,
median seconds per decoded token (decode wall time / gen), peak RSS (VmHWM; note that it counts
the pages of mmapped weight files the process touched), and on CUDA
torch.cuda.max_memory_allocated. Weights are read from a warm page cache (nothing drops it).

Budget:
  --device cpu (default without a GPU): --max-ram SIZE is accelerate's CPU tier; the rest goes
    to the 'disk' tier (read per forward from the safetensors file / offload folder). Default 0:
    everything streamed from the files, like `rabbit run --ram-budget 0`; AirLLM/RabbitLLM
    stream regardless. --max-ram none loads accelerate fully into RAM (no offload).
  --device cuda: --max-vram SIZE caps every peer with torch.cuda.set_per_process_memory_fraction
    (exceeding it is an OOM, reported as the peer's error) and is accelerate's GPU tier;
    --max-ram (default: none = unlimited) is its CPU tier.
Each JSON line's "config" says what the peer actually did (device map counts, layer loads per
decode step, dtype, attention implementation).

Output: one JSON line per peer on stdout (and appended to --json FILE), then markdown rows for
docs/BENCHMARKS.md. A peer that fails is a row with its one-line error; the others still run.

Environment (see scripts/bench_peers.sh for making it):
  RABBIT_VENV=~/.cache/rabbit/venv-offload scripts/venv.sh engine offload
  ~/.cache/rabbit/venv-offload/bin/python -m pip install --no-deps rabbitllm==1.1.0
GPU machine without network (torch and transformers already there; python3 is 3.12):
  here:  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
           --implementation cp --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
           -d .whl airllm==4.0.0 rabbitllm==1.1.0 bitsandbytes==0.50.2
         (accelerate, psutil, scipy, einops, tiktoken, sentencepiece are in that image; else add
         them, or `pip download -d WHEELHOUSE -r scripts/requirements-offload.txt` for all of them;
         the wheelhouse needs no torch)
  there: python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
         PYTHONPATH=/tmp/site PYTHON=python3 scripts/bench_peers.sh MODEL --device cuda --max-vram 4G
  (the model must be made there, e.g. with build/rabbit-genmodel: 1 GB does not travel.)
"""

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
import traceback

PEERS = ("rabbitllm", "airllm", "accelerate")
RESULT_TAG = "BENCH_PEERS_RESULT "
PROGRESS_TAG = "BENCH_PEERS_PROGRESS "


def parse_size(text):
    """'4G', '512M', '300MB', '1.5GiB', '0' -> bytes; 'none' -> None."""
    if text is None or str(text).lower() in ("none", "", "unlimited"):
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text), re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4G, 512M, 0, none)")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def fmt_size(n):
    if n is None:
        return "none"
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g}{unit}"
    return str(n)


def proc_status_kib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mib():
    hwm = proc_status_kib("VmHWM")
    if hwm is None:  # not Linux: ru_maxrss is KiB on Linux, bytes on macOS
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":
            hwm //= 1024
    return round(hwm / 1024, 1)


def default_cache_dir(model_dir):
    base = os.environ.get("RABBIT_PEERS_CACHE", os.path.expanduser("~/.cache/rabbit/peer-splits"))
    real = os.path.realpath(model_dir)
    tag = hashlib.sha1(real.encode()).hexdigest()[:10]
    return os.path.join(base, f"{os.path.basename(real.rstrip('/'))}-{tag}")


# --------------------------------------------------------------------------------------------
# worker side: runs in its own process, one peer
# --------------------------------------------------------------------------------------------


class Peer:
    """One peer: load(), forward(ids, past) -> (logits of the last position, past)."""

    name = "?"

    def __init__(self, args, torch):
        self.args = args
        self.torch = torch
        self.device = args.device_str
        self.config = {}
        self.layer_loads = 0

    def prepare(self):
        """Whatever one-time conversion the peer does before it can run (timed separately)."""

    def forward(self, ids, past):
        out = self.model(input_ids=ids, past_key_values=past, use_cache=True, return_dict=True)
        return out.logits[:, -1, :], out.past_key_values

    def _count_loads(self, obj, attr):
        """Wrap obj.attr (a layer-from-file loader) to count calls: proof of streaming."""
        orig = getattr(obj, attr)

        def counted(*a, **k):
            self.layer_loads += 1
            return orig(*a, **k)

        setattr(obj, attr, counted)


class SplittingPeer(Peer):
    """RabbitLLM and AirLLM: the same AutoModel.from_pretrained, splitting the checkpoint into
    per-layer files under the cache dir on first use, then streaming them on every forward."""

    package = "?"

    def _make(self):
        module = __import__(self.package)
        split_dir = os.path.join(self.args.cache_dir, self.package)
        os.makedirs(split_dir, exist_ok=True)  # RabbitLLM statvfs()es the path before making it
        kw = dict(
            device=self.device,
            max_seq_len=self.args.prompt_len + self.args.gen + 1,
            layer_shards_saving_path=split_dir,
            compression=None,
        )
        kw.update(self.extra_kwargs())
        if self.args.torch_dtype is not None:
            kw["dtype"] = self.args.torch_dtype
        m = module.AutoModel.from_pretrained(self.args.model, **kw)
        self.version = getattr(module, "__version__", None) or pkg_version(self.package)
        return m

    def extra_kwargs(self):
        return {}

    def prepare(self):
        self._make()

    def load(self):
        m = self._make()
        self.model = m
        self._count_loads(m, "load_layer_to_cpu")
        self.config.update(
            cls=type(m).__name__,
            device=str(m.running_device),
            dtype=str(m.running_dtype).replace("torch.", ""),
            prefetching=m.prefetching,
            compression=m.compression,
        )
        self.config.update(self.describe(m))
        self.dtype = m.running_dtype


class RabbitLLMPeer(SplittingPeer):
    name = package = "rabbitllm"

    def extra_kwargs(self):
        return dict(show_layer_progress=False)

    def describe(self, m):
        return dict(
            attn=getattr(m, "_active_attn_implementation", None) or m.attn_implementation,
            max_seq_len=m.max_seq_len,
            cache_layers=m._cache_layers_limit,
            gds=m.use_gds,
            streamed_units=len(m.layer_names),
        )


class AirLLMPeer(SplittingPeer):
    name = package = "airllm"

    def describe(self, m):
        return dict(
            attn=getattr(m.model.config, "_attn_implementation", None),
            tied_embedding_resident=bool(getattr(m, "tie_word_embeddings", False)),
            streamed_units=len(getattr(m, "_streamed_indices", [])),
        )


class AcceleratePeer(Peer):
    name = "accelerate"

    def load(self):
        import collections

        import transformers
        from transformers import AutoModelForCausalLM

        torch = self.torch
        a = self.args
        dtype = a.torch_dtype if a.torch_dtype is not None else "auto"
        offload = os.path.join(a.cache_dir, "accelerate-offload")
        os.makedirs(offload, exist_ok=True)
        kw = dict(dtype=dtype)
        if a.device == "cuda":
            mm = {}
            mm[torch.cuda.current_device()] = a.max_vram if a.max_vram is not None else \
                torch.cuda.mem_get_info()[0]
            if a.max_ram is not None:
                mm["cpu"] = a.max_ram
            else:
                mm["cpu"] = host_ram_bytes()
            kw.update(device_map="auto", max_memory=mm, offload_folder=offload)
            budget = {k if k == "cpu" else f"cuda:{k}": fmt_size(v) for k, v in mm.items()}
        elif a.max_ram is None:
            kw.update(device_map="cpu")
            budget = {"cpu": "unlimited (full load, no offload)"}
        else:
            # accelerate appends a 'disk' tier after the last device of max_memory; max(…, 1)
            # because a 0 budget is read by some versions as 'no limit given'.
            kw.update(device_map="auto", max_memory={"cpu": max(a.max_ram, 1)},
                      offload_folder=offload)
            budget = {"cpu": fmt_size(a.max_ram)}
        m = AutoModelForCausalLM.from_pretrained(a.model, **kw)
        m.eval()
        self.model = m
        self.version = pkg_version("accelerate")
        dmap = getattr(m, "hf_device_map", None) or {"": str(kw["device_map"])}
        counts = collections.Counter(str(v) for v in dmap.values())
        real = [p for p in m.parameters() if p.device.type != "meta"]
        self.dtype = m.dtype
        self.config.update(
            transformers=transformers.__version__,
            budget=budget,
            device_map_counts=dict(counts),
            device_map_head=dict(list(dmap.items())[:3]),
            dtype=str(self.dtype).replace("torch.", ""),
            attn=getattr(m.config, "_attn_implementation", None),
            params_not_on_meta=sum(p.numel() for p in real),
            params_total=sum(p.numel() for p in m.parameters()),
        )
        self.offloaded = any(v in ("disk", "cpu") for v in counts) if a.device == "cuda" else \
            "disk" in counts


def pkg_version(name):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return None


def host_ram_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 64 << 30


def make_peer(name, args, torch):
    return {"rabbitllm": RabbitLLMPeer, "airllm": AirLLMPeer, "accelerate": AcceleratePeer}[name](
        args, torch)


def worker(args):
    t_import = time.perf_counter()
    import torch

    res = {"peer": args.worker, "phase": args.phase}
    if args.threads:
        torch.set_num_threads(args.threads)
    args.torch_dtype = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16,
                        "fp32": torch.float32}[args.dtype]
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda but torch.cuda.is_available() is False")
        args.device_str = "cuda:0"
        torch.cuda.set_device(0)
        total = torch.cuda.get_device_properties(0).total_memory
        if args.max_vram is not None:
            frac = min(1.0, args.max_vram / total)
            torch.cuda.set_per_process_memory_fraction(frac, 0)
            res["vram_fraction"] = round(frac, 4)
        res["gpu"] = torch.cuda.get_device_name(0)
    else:
        args.device_str = "cpu"
    peer = make_peer(args.worker, args, torch)
    res["import_s"] = round(time.perf_counter() - t_import, 3)
    res["rss_before_load_mib"] = round((proc_status_kib("VmRSS") or 0) / 1024, 1)

    if args.phase == "prepare":
        t0 = time.perf_counter()
        peer.prepare()
        res["split_s"] = round(time.perf_counter() - t0, 3)
        res["peak_rss_mib"] = peak_rss_mib()
        return res

    t0 = time.perf_counter()
    peer.load()
    res["load_s"] = round(time.perf_counter() - t0, 3)
    print(f"{PROGRESS_TAG}{args.worker} loaded in {res['load_s']:.1f} s: {peer.config}", flush=True)
    res["rss_after_load_mib"] = round((proc_status_kib("VmRSS") or 0) / 1024, 1)
    res["peer_version"] = getattr(peer, "version", None)
    res["torch"] = torch.__version__
    res["threads"] = torch.get_num_threads()
    res["device"] = args.device_str

    def sync():
        if args.device == "cuda":
            torch.cuda.synchronize()

    vocab = model_vocab_size(args.model)
    gen = torch.Generator().manual_seed(args.seed)
    lo = min(vocab // 8, 1000)  # keep clear of the special/byte ids at the start
    prompt = torch.randint(lo, vocab, (1, args.prompt_len), generator=gen, dtype=torch.long)
    prompt = prompt.to(args.device_str)

    prefill, decode, tokens, loads = [], [], None, None
    with torch.inference_mode():  # peak VRAM below is since process start: load included
        for run in range(1 + args.repeat):
            peer.layer_loads = 0
            sync()
            t0 = time.perf_counter()
            logits, past = peer.forward(prompt, None)
            tok = logits.argmax(-1, keepdim=True)
            sync()
            t1 = time.perf_counter()
            loads_prefill = peer.layer_loads
            out = [int(tok.item())]
            for _ in range(args.gen):
                logits, past = peer.forward(tok, past)
                tok = logits.argmax(-1, keepdim=True)
                out.append(int(tok.item()))  # .item() syncs, as a real sampler would
            sync()
            t2 = time.perf_counter()
            loads = None if args.worker == "accelerate" else {"prefill": loads_prefill,
                     "per_decode_step": round((peer.layer_loads - loads_prefill) / max(args.gen, 1), 2)}
            del past, logits
            if run == 0:
                print(f"{PROGRESS_TAG}{args.worker} warm-up: prefill {t1 - t0:.3f} s, decode "
                      f"{(t2 - t1) / max(args.gen, 1):.4f} s/tok", flush=True)
                tokens = out
                res["warmup_prefill_s"] = round(t1 - t0, 4)
                res["warmup_decode_s_per_tok"] = round((t2 - t1) / max(args.gen, 1), 5)
                continue
            if out != tokens:
                res.setdefault("warnings", []).append(f"run {run} decoded other tokens than run 0")
            prefill.append(t1 - t0)
            decode.append((t2 - t1) / max(args.gen, 1))
            print(f"{PROGRESS_TAG}{args.worker} run {run}/{args.repeat}: prefill {t1 - t0:.3f} s, "
                  f"decode {decode[-1]:.4f} s/tok", flush=True)

    pf = statistics.median(prefill)
    dc = statistics.median(decode)
    res.update(
        dtype=str(peer.dtype).replace("torch.", ""),
        prefill_s=round(pf, 4),
        prefill_tok_s=round(args.prompt_len / pf, 2),
        decode_s_per_tok=round(dc, 5),
        decode_tok_s=round(1 / dc, 3),
        prefill_runs=[round(x, 4) for x in prefill],
        decode_runs=[round(x, 5) for x in decode],
        peak_rss_mib=peak_rss_mib(),
        tokens_head=tokens[:8],
        tokens_sha1=hashlib.sha1(json.dumps(tokens).encode()).hexdigest()[:12],
        layer_loads=loads,
        config=peer.config,
    )
    if args.device == "cuda":
        res["peak_vram_mib"] = round(torch.cuda.max_memory_allocated() / (1 << 20), 1)
        res["peak_vram_reserved_mib"] = round(torch.cuda.max_memory_reserved() / (1 << 20), 1)
    if args.worker == "accelerate" and not peer.offloaded:
        res.setdefault("warnings", []).append("budget fits the whole model: nothing offloaded")
    if args.worker in ("rabbitllm", "airllm") and loads and loads["per_decode_step"] < 1:
        res.setdefault("warnings", []).append("no layer was read from its file per decode step")
    return res


def model_vocab_size(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    v = cfg.get("vocab_size") or (cfg.get("text_config") or {}).get("vocab_size")
    return int(v)


def worker_main(args):
    try:
        res = worker(args)
    except BaseException as e:  # noqa: BLE001 - reported to the parent as the peer's error
        traceback.print_exc()
        res = {"peer": args.worker, "phase": args.phase, "error": one_line(e)}
    sys.stdout.flush()
    print(RESULT_TAG + json.dumps(res), flush=True)
    os._exit(0)  # skip interpreter teardown (prefetch threads, CUDA contexts)


def one_line(e):
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."


# --------------------------------------------------------------------------------------------
# parent side
# --------------------------------------------------------------------------------------------


def run_worker(args, peer, phase, passthrough):
    """One worker process; its output goes to CACHE_DIR/PEER.PHASE.log, progress lines echo."""
    import threading

    cmd = [sys.executable, os.path.abspath(__file__), args.model, "--worker", peer,
           "--phase", phase] + passthrough
    t0 = time.perf_counter()
    log_path = os.path.join(args.cache_dir, f"{peer}.{phase}.log")
    result, last, timed_out = None, "no output", []
    with open(log_path, "w") as log:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             errors="replace")

        def kill():
            timed_out.append(True)
            p.kill()

        timer = threading.Timer(args.timeout, kill)
        timer.start()
        try:
            for line in p.stdout:
                log.write(line)
                if line.startswith(RESULT_TAG):
                    result = json.loads(line[len(RESULT_TAG):])
                elif line.startswith(PROGRESS_TAG):
                    print("  " + line[len(PROGRESS_TAG):].rstrip(), file=sys.stderr, flush=True)
                elif line.strip():
                    last = line.strip()
            rc = p.wait()
        finally:
            timer.cancel()
    wall = time.perf_counter() - t0
    if result is not None:
        return result, wall
    if timed_out:
        return {"peer": peer, "phase": phase, "error": f"timed out after {args.timeout} s"}, wall
    return {"peer": peer, "phase": phase,
            "error": f"worker exited {rc}: {last[:250]} (log: {log_path})"}, wall


def split_exists(args, peer):
    d = os.path.join(args.cache_dir, peer, "splitted_model")
    return os.path.isdir(d) and any(n.endswith(".done") for n in os.listdir(d))


def md_row(r, args):
    def f(x, nd):
        return "—" if x is None else f"{x:.{nd}f}"

    cfg = r.get("config") or {}
    if "error" in r:
        return (f"| {r['peer']} {r.get('peer_version') or ''} | {args.device} | — | "
                f"{args.prompt_len} | {args.gen} | — | — | — | — | — | — | "
                f"error: {r['error'].replace('|', '/')} |")
    notes = []
    if r["peer"] == "accelerate":
        notes.append("map " + ",".join(f"{k}:{v}" for k, v in cfg.get("device_map_counts", {}).items()))
        notes.append("budget " + ",".join(f"{k}={v}" for k, v in cfg.get("budget", {}).items()))
    else:
        ll = r.get("layer_loads") or {}
        notes.append(f"{ll.get('per_decode_step')} layer files read/token")
        if cfg.get("prefetching"):
            notes.append("prefetch")
    if r.get("split_s") is not None:
        notes.append(f"split {r['split_s']:.1f} s" + (" (cached)" if r.get("split_cached") else ""))
    notes.append(f"load {r['load_s']:.1f} s")
    notes.append(f"attn {cfg.get('attn')}")
    notes += r.get("warnings", [])
    vram = f(r.get("peak_vram_mib"), 0)
    return (f"| {r['peer']} {r.get('peer_version') or ''} | {r['device']} ×{r['threads']}t | "
            f"{r['dtype']} | {args.prompt_len} | {args.gen} | {f(r['prefill_s'], 2)} | "
            f"{f(r['prefill_tok_s'], 1)} | {f(r['decode_s_per_tok'] * 1000, 1)} | "
            f"{f(r['decode_tok_s'], 2)} | {f(r['peak_rss_mib'], 0)} | {vram} | {'; '.join(notes)} |")


MD_HEADER = ("| peer | device | dtype | prompt | gen | prefill s | prefill tok/s | decode ms/tok | "
             "decode tok/s | peak RSS MiB | peak VRAM MiB | notes |\n"
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="Hugging Face model directory (config.json + safetensors)")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help=f"comma-separated, from {','.join(PEERS)} (default: all)")
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--gen", type=int, default=32, help="decode steps after the prompt")
    ap.add_argument("--repeat", type=int, default=3, help="measured runs after 1 warm-up run")
    ap.add_argument("--device", choices=("cpu", "cuda"), default=None,
                    help="default: cuda if torch sees a GPU, else cpu")
    ap.add_argument("--max-vram", type=parse_size, default=None,
                    help="GPU budget, e.g. 4G (cuda only): a hard cap for every peer")
    ap.add_argument("--max-ram", default=None,
                    help="accelerate's CPU tier, e.g. 8G; 'none' = unlimited "
                         "(default: 0 on cpu = all from disk, none on cuda)")
    ap.add_argument("--dtype", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                    help="runtime dtype (default: the checkpoint's, which every peer keeps)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the prompt's token ids")
    ap.add_argument("--cache-dir", default=None,
                    help="where the peers' per-layer splits and offload folders go "
                         "(default: $RABBIT_PEERS_CACHE or ~/.cache/rabbit/peer-splits/NAME-HASH)")
    ap.add_argument("--json", default=None, help="append the JSON lines to this file")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per peer process")
    ap.add_argument("--label", default="", help="free text stored in every JSON line")
    ap.add_argument("--worker", choices=PEERS, help=argparse.SUPPRESS)
    ap.add_argument("--phase", choices=("prepare", "measure"), default="measure",
                    help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.device is None:
        args.device = "cpu"
        try:
            import torch

            if torch.cuda.is_available():
                args.device = "cuda"
        except ImportError:
            pass
    if args.max_ram is None:
        args.max_ram = "0" if args.device == "cpu" else "none"
    args.max_ram = parse_size(args.max_ram)
    args.model = os.path.abspath(os.path.expanduser(args.model))
    if args.cache_dir is None:
        args.cache_dir = default_cache_dir(args.model)
    args.cache_dir = os.path.abspath(os.path.expanduser(args.cache_dir))

    if args.worker:
        return worker_main(args)

    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    bad = [p for p in peers if p not in PEERS]
    if bad:
        ap.error(f"unknown peer(s) {bad}; choose from {PEERS}")
    if args.max_vram is not None and args.device != "cuda":
        print("bench_peers: --max-vram is ignored on cpu", file=sys.stderr)
    os.makedirs(args.cache_dir, exist_ok=True)
    passthrough = ["--prompt-len", str(args.prompt_len), "--gen", str(args.gen),
                   "--repeat", str(args.repeat), "--device", args.device,
                   "--max-ram", "none" if args.max_ram is None else str(args.max_ram),
                   "--dtype", args.dtype, "--threads", str(args.threads),
                   "--seed", str(args.seed), "--cache-dir", args.cache_dir]
    if args.max_vram is not None:
        passthrough += ["--max-vram", str(args.max_vram)]

    host = {"host": platform.node(), "cpu": cpu_model(), "nproc": os.cpu_count(),
            "python": platform.python_version()}
    rows = []
    for peer in peers:
        print(f"bench_peers: {peer} on {args.device} ({args.prompt_len}+{args.gen} tokens, "
              f"1+{args.repeat} runs), cache {args.cache_dir}", file=sys.stderr, flush=True)
        split_s = split_cached = None
        if peer in ("rabbitllm", "airllm"):
            split_cached = split_exists(args, peer)
            prep, wall = run_worker(args, peer, "prepare", passthrough)
            if "error" in prep:
                res = {"peer": peer, "error": "prepare: " + prep["error"]}
                finish(res, args, host, rows)
                continue
            split_s = prep.get("split_s", round(wall, 3))
        res, _ = run_worker(args, peer, "measure", passthrough)
        res.pop("phase", None)
        if split_s is not None:
            res["split_s"] = split_s
            res["split_cached"] = split_cached
        finish(res, args, host, rows)

    print("\n" + MD_HEADER)
    for r in rows:
        print(md_row(r, args))
    return 0


def finish(res, args, host, rows):
    res.update(model=args.model, prompt_len=args.prompt_len, gen=args.gen, repeat=args.repeat,
               budget={"device": args.device, "max_vram": fmt_size(args.max_vram),
                       "max_ram": fmt_size(args.max_ram)},
               label=args.label, when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **host)
    res.setdefault("device", args.device)
    line = json.dumps(res)
    print(line, flush=True)
    if args.json:
        with open(args.json, "a") as f:
            f.write(line + "\n")
    if "error" in res:
        print(f"bench_peers: {res['peer']} failed: {res['error']}", file=sys.stderr, flush=True)
    rows.append(res)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
