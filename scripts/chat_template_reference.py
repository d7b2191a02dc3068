#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Renders the real chat templates in tests/data/chat_templates/ with jinja2, through
transformers' own apply_chat_template code path (render_jinja_template: its sandboxed
environment with trim_blocks and lstrip_blocks, its tojson, raise_exception and strftime_now),
over a set of conversations, and writes what it renders as NAME.expected.json beside each
template. tests/test_chat_template.cpp renders the same contexts with rabbit's interpreter and
compares byte for byte, so the tests need no Python.

    ~/.cache/rabbit/venv/bin/python scripts/chat_template_reference.py [--check]

--check renders again and compares with the committed files instead of writing them.

strftime_now renders a fixed moment (FIXED_NOW) so that Llama 3.2's date preamble is stable;
the test injects the same moment.
"""
import datetime
import json
import os
import sys

import transformers
from transformers.utils import chat_template_utils as ctu

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data", "chat_templates")
FIXED_NOW = datetime.datetime(2025, 3, 14, 9, 26, 53)


class FixedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


ctu.datetime = FixedDatetime  # strftime_now reads datetime.now() from the module at call time

# The special tokens each model's tokenizer passes to its template (transformers'
# special_tokens_map: the named tokens that are set).
QWEN = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
TEMPLATES = {
    "Qwen-Qwen2.5-7B-Instruct": QWEN,
    "Qwen-Qwen3-0.6B": QWEN,
    "Qwen-QwQ-32B": QWEN,
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": {
        "bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>",
        "pad_token": "<｜end▁of▁sentence｜>"},
    "meta-llama-Llama-3.1-8B-Instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "meta-llama-Llama-3.2-3B-Instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "meta-llama-Llama-3.3-70B-Instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "mistralai-Mistral-7B-Instruct-v0.3": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "HuggingFaceTB-SmolLM2-135M-Instruct": {
        "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|im_end|>"},
}

SYSTEM = {"role": "system", "content": "You are a terse assistant. Answer in one line."}
U1 = {"role": "user", "content": "What is the capital of France?"}
A1 = {"role": "assistant", "content": "Paris."}
U2 = {"role": "user", "content": "  And of Italy? Ünïcödé 世界 🐇  \n"}
A2_THINK = {"role": "assistant", "content": "<think>\nItaly's capital is Rome.\n</think>\n\nRome."}
U3 = {"role": "user", "content": "Thanks!\n\tTabs and \"quotes\" and 'apostrophes' and \\backslashes\\."}

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a city, \"now\" or later.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. Zürich"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
            },
            "required": ["city"],
        },
    },
}]
TOOL_CALL = {"role": "assistant", "content": "", "tool_calls": [{
    "id": "call12345", "type": "function",
    "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]}
TOOL_RESULT = {"role": "tool", "tool_call_id": "call12345", "name": "get_weather",
               "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"}


def conversations(name):
    """(case name, messages, extra context) for each rendering of a template."""
    convs = [
        ("one user turn", [U1], {}),
        ("system and user", [SYSTEM, U1], {}),
        ("multi-turn", [U1, A1, U2], {}),
        ("multi-turn with system", [SYSTEM, U1, A1, U2, A2_THINK, U3], {}),
        ("multi-turn ending with the assistant", [SYSTEM, U1, A1], {}),
    ]
    if "Qwen3" in name:
        for think in (True, False):
            convs.append((f"enable_thinking={think}", [U1], {"enable_thinking": think}))
            convs.append((f"multi-turn, enable_thinking={think}", [SYSTEM, U1, A2_THINK, U2], {"enable_thinking": think}))
    if "Mistral" not in name:
        convs.append(("tools", [SYSTEM, U1], {"tools": TOOLS}))
    if any(k in name for k in ("Qwen2.5", "Qwen3", "QwQ", "Llama-3")):
        convs.append(("tool call and result", [U1, TOOL_CALL, TOOL_RESULT], {"tools": TOOLS}))
        convs.append(("tool call without tools", [SYSTEM, U1, TOOL_CALL, TOOL_RESULT], {}))
    if "Mistral" in name:
        convs.append(("tools, tool call and result", [U1, TOOL_CALL, TOOL_RESULT, A1, U2], {"tools": TOOLS}))
        convs.append(("roles that do not alternate", [U1, U2], {}))
    return convs


def render(template, specials, messages, extra, add_generation_prompt):
    kwargs = dict(specials)
    kwargs.update({k: v for k, v in extra.items() if k != "tools"})
    rendered, _ = ctu.render_jinja_template(
        conversations=[messages], tools=extra.get("tools"), documents=None, chat_template=template,
        add_generation_prompt=add_generation_prompt, **kwargs)
    return rendered[0]


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, specials in TEMPLATES.items():
        with open(os.path.join(DATA, name + ".jinja"), encoding="utf-8") as f:
            template = f.read()
        cases = []
        for case, messages, extra in conversations(name):
            for agp in (True, False):
                context = {"messages": messages, "add_generation_prompt": agp, "tools": extra.get("tools"),
                           "documents": None, **specials, **{k: v for k, v in extra.items() if k != "tools"}}
                entry = {"name": f"{case}, add_generation_prompt={agp}", "context": context}
                try:
                    entry["output"] = render(template, specials, messages, extra, agp)
                except Exception as e:  # the template's raise_exception: the test expects an error too
                    entry["error"] = f"{type(e).__name__}: {e}"
                cases.append(entry)
        out = {
            "template": name + ".jinja",
            "rendered_by": f"transformers {transformers.__version__} render_jinja_template, "
                           f"jinja2 {__import__('jinja2').__version__}",
            "strftime_now": FIXED_NOW.isoformat(),
            "cases": cases,
        }
        path = os.path.join(DATA, name + ".expected.json")
        if check:
            with open(path, encoding="utf-8") as f:
                committed = json.load(f)
            if committed["cases"] != out["cases"]:
                stale.append(name)
            continue
        with open(path, "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"{name}: {len(cases)} cases")
    if stale:
        sys.exit("chat_template_reference: jinja2 now renders differently from the committed " + ", ".join(stale))
    if check:
        print(f"chat_template_reference: {len(TEMPLATES)} templates render as committed")


if __name__ == "__main__":
    main()
