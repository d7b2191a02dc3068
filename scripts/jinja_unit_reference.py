#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Renders small templates, one per construct of rabbit's Jinja subset, in transformers'
chat-template environment (jinja2 with trim_blocks, lstrip_blocks, loopcontrols, transformers'
tojson and strftime_now), and writes tests/data/chat_templates/interpreter.expected.json,
which tests/test_jinja.cpp renders with rabbit's interpreter and compares byte for byte.

    ~/.cache/rabbit/venv/bin/python scripts/jinja_unit_reference.py [--check]

--check renders again and compares with the committed file instead of writing it.
"""
import datetime
import json
import os
import sys

from transformers.utils import chat_template_utils as ctu

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "chat_templates",
                   "interpreter.expected.json")
cases = [
 ("whitespace: trim_blocks and lstrip_blocks", "a\n  {% if true %}\nb\n  {% endif %}\nc\n", {}),
 ("whitespace: - strips, + keeps", "x  {%- if true -%}  y  {%- endif %}  {{- ' z ' -}}  w\n  {%+ if true %}k{% endif %}", {}),
 ("whitespace: comments", "a {# c #}\n  {#- d -#}  b\n    {# e #}\nc", {}),
 ("expressions: arithmetic", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 3.0 }} {{ 'ab' * 3 }} {{ 1.5e-7 }}", {}),
 ("expressions: logic and comparisons", "{{ 1 < 2 and 'a' }} {{ 0 or 'b' }} {{ not 1 }} {{ 1 == 1.0 }} {{ 'a' in 'cat' }} {{ 2 not in [1, 3] }} {{ 'k' in {'k': 1} }} {{ [1, 2] == [1, 2] }} {{ true == 1 }}", {}),
 ("expressions: concat, inline if, literals", "{{ 1 ~ 'x' ~ none }} {{ 'y' if false else 'n' }} [{{ 'y' if false }}] {{ [1, 'a', none, true, 1.5] }} {{ {'a': 1, 'b': [2]} }} {{ \"it's\" }} {{ 'tab\\there' }}", {}),
 ("subscripts and slices", "{{ xs[0] }} {{ xs[-1] }} {{ xs[1:] }} {{ xs[:-1] }} {{ xs[::-1] }} {{ xs[::2] }} {{ s[1:4] }} {{ s[::-1] }} {{ s[-2] }} [{{ xs[10] }}] {{ d.k }} {{ d['k'] }} [{{ d.missing }}]", {"xs": [1, 2, 3, 4], "s": "héllo", "d": {"k": "v"}}),
 ("filters", "{{ '  a b  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ xs | length }}|{{ 'héllo' | length }}|{{ 'Ab' | upper }}{{ 'Ab' | lower }}|{{ u | default('dflt') }}|{{ '' | default('e', true) }}|{{ xs | join(', ') }}|{{ xs | first }}{{ xs | last }}|{{ 'abc' | list }}|{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}|{{ 12 | string }}|{{ '42' | int + 1 }}|{{ 'a-b' | replace('-', '+') }}|{{ xs | reverse | list }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}|{{ xs | map('string') | join }}|{{ -3 | abs }}|{{ [1,2,2,3] | unique | list }}|{{ xs | sum }}", {"xs": [1, 2, 3], "d": {"a": 1, "b": 2}}),
 ("selectattr, rejectattr, map(attribute)", "{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|{{ ms | rejectattr('role', 'equalto', 'user') | list | length }}|{{ ms | selectattr('tool_calls', 'undefined') | list | length }}|{{ ms | selectattr('tool_calls') | list | length }}|{{ [1, 2, 3, 4] | select('odd') | list }}|{{ ['a', 'b'] | reject('equalto', 'a') | list }}", {"ms": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1", "tool_calls": [1]}, {"role": "user", "content": "u2"}]}),
 ("tojson", "{{ v | tojson }}|{{ v | tojson(indent=2) }}|{{ 'é\"\\n<' | tojson }}|{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}|{{ [] | tojson }}|{{ {} | tojson(indent=2) }}", {"v": {"s": "Zürich \u2028", "n": None, "b": True, "i": -3, "f": 2.50, "l": [1, [2, {}]], "e": ""}}),
 ("tests", "{{ u is defined }}{{ n is none }}{{ 's' is string }}{{ 1 is number }}{{ 1 is integer }}{{ 1.0 is float }}{{ true is boolean }}{{ false is false }}{{ d is mapping }}{{ xs is iterable }}{{ 's' is iterable }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 2 is in xs }}{{ 'a' is not none }}{{ n is sameas none }}{{ u is undefined }}{{ 'abc' is lower }}", {"n": None, "d": {}, "xs": [1, 2]}),
 ("string methods", "{{ s.startswith('<think>') }} {{ s.endswith('x') }} {{ s.split('</think>')[-1].lstrip('\\n') }}|{{ ' a  b '.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ '  x  '.strip() }}|{{ 'xxyxx'.rstrip('x') }}|{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'abc'.find('c') }}|{{ '-'.join(['a', 'b']) }}|{{ 'ab ab'.count('ab') }}|{{ 'x y'.title() }}", {"s": "<think>\nhm\n</think>\n\nanswer"}),
 ("for loops", "{% for x in xs %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }} {% endfor %}|{% for x in xs if x > 1 %}{{ x }}{{ loop.length }}{% endfor %}|{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for x in [] %}no{% else %}empty{% endfor %}|{% for c in 'ab' %}{{ c }}{% endfor %}|{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}|{% for k in d %}{{ k }}{% endfor %}|{% for x in xs %}{{ loop.cycle('a', 'b') }}{% endfor %}|{% for x in xs %}{{ loop.previtem }}{% endfor %}", {"xs": [1, 2, 3], "d": {"a": 1, "b": 2}}),
 ("set, scoping and namespace", "{% set a = 1 %}{% for x in xs %}{% set a = x %}{% endfor %}{{ a }}|{% set ns = namespace(n=0, found=false) %}{% for x in xs %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}|{% if true %}{% set b = 5 %}{% endif %}{{ b }}|{% set c %}block {{ a }}{% endset %}{{ c }}|{% set p, q = 1, 2 %}{{ p }}{{ q }}|{% set xs = xs[1:] %}{{ xs }}", {"xs": [1, 2, 3]}),
 ("macros", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }} {{ greet(name='C') }}", {}),
 ("globals", "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ dict(a=1) }} {{ strftime_now('%d %b %Y') }}", {}),
 ("scoping: a loop body reads the outer value on every pass", "{% for x in [1,2] %}[{{ y }}]{% set y = x %}{% endfor %}|{% set y = 0 %}{% for x in [1,2] %}[{{ y }}]{% set y = x %}{% endfor %}{{ y }}|{% for x in [1,2] %}{% for z in [3] %}{{ loop.index }}{% endfor %}{{ loop.index }}{{ loop.length }}{% endfor %}|{% macro m() %}{{ g }}{% endmacro %}{% set g = 5 %}{{ m() }}", {}),
 ("newlines: CR LF and CR read as LF", "a\r\n{% if true %}\r\nb\rc{% endif %}\r\n", {}),
 ("undefined prints empty and iterates empty", "[{{ u }}][{% for x in u %}x{% endfor %}][{{ u | length }}][{{ u ~ 'a' }}][{{ not u }}]", {}),
]


class FixedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime(2025, 3, 14, 9, 26, 53)


def random_whitespace_cases(n, seed=20261201):
    """Templates of random text, whitespace and tags with every '-' and '+' variant: where
    trim_blocks, lstrip_blocks and whitespace control meet."""
    import random
    rng = random.Random(seed)
    texts = [" ", "  ", "\t", "\n", "\n  ", "  \n", "x", " y ", "\n\n", "z\n\t"]
    def tag(body):
        return "{%" + rng.choice(["", "-", "+"]) + " " + body + " " + rng.choice(["", "-", "+"]) + "%}"
    def expr():
        return "{{" + rng.choice(["", "-"]) + " " + rng.choice(["'e'", "1", "'\\n'", "' '"]) + " " + rng.choice(["", "-"]) + "}}"
    def comment():
        return "{#" + rng.choice(["", "-"]) + " c " + rng.choice(["", "-"]) + "#}"
    def block(depth):
        out = ""
        for _ in range(rng.randint(1, 4)):
            r = rng.random()
            if r < 0.45:
                out += rng.choice(texts)
            elif r < 0.6:
                out += expr()
            elif r < 0.7:
                out += comment()
            elif depth < 3 and r < 0.85:
                out += tag("if " + rng.choice(["true", "false"])) + block(depth + 1)
                if rng.random() < 0.5:
                    out += tag("else") + block(depth + 1)
                out += tag("endif")
            elif depth < 3:
                out += tag("for i in [1, 2]") + block(depth + 1) + tag("endfor")
            else:
                out += rng.choice(texts)
        return out
    cases = []
    for i in range(n):
        src = block(0)
        if rng.random() < 0.3:
            src += "\n"
        cases.append((f"random whitespace {i}", src, {}))
    return cases


def main():
    ctu.datetime = FixedDatetime  # strftime_now reads datetime.now() from the module at call time
    out = []
    for name, src, variables in cases + random_whitespace_cases(400):
        template = ctu._compile_jinja_template(src)
        out.append({"name": name, "template": src, "vars": variables, "output": template.render(**variables)})
    if "--check" in sys.argv[1:]:
        with open(OUT, encoding="utf-8") as f:
            if json.load(f) != out:
                sys.exit("jinja_unit_reference: jinja2 now renders differently from interpreter.expected.json")
        print(f"jinja_unit_reference: {len(out)} cases render as committed")
        return
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    for o in out:
        print(o["name"], repr(o["output"]))


if __name__ == "__main__":
    main()
