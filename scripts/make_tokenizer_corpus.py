#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the tokenizer conformance corpus, tests/data/tokenizer/corpus.jsonl: one JSON string
per line (texts may hold newlines), at least 2,000 of them. Hand-written fragments of every
kind the tokenizers must get right, then seeded mixtures of them. Deterministic: running it
again gives the same file. The fragments are written for this corpus.

    python3 scripts/make_tokenizer_corpus.py
"""
import json
import os
import random

PROSE = [
    "The train left the station at dawn, and by noon the hills had turned from green to gold.",
    "She counted the coins twice before admitting that the jar was lighter than it had been in spring.",
    "Nobody on the committee could explain why the budget for paper clips had tripled.",
    "A small dog followed the postman all the way to the end of the lane and then sat down, satisfied.",
    "If the bridge closes again, we will take the ferry, which is slower but has better coffee.",
    "He wrote his notes in the margins, in pencil, so that the next reader could erase them.",
    "The experiment failed on Tuesday, succeeded on Wednesday, and nobody could say what had changed.",
    "Rain is forecast for the weekend; the picnic will move indoors, to the library's reading room.",
    "They argued about the map for an hour before noticing it was upside down.",
    "Every winter the lake froze thick enough to walk across, and every winter someone tested it too early.",
    "The museum keeps its oldest clocks in a room without windows, where they tick out of step with each other.",
    "Please return the ladder to the shed when you're done; the last one went missing for a month.",
    "The recipe calls for two eggs, a cup of flour, and more patience than I usually have.",
    "Our neighbour grows tomatoes on the balcony and gives away more than she eats.",
    "In the end the orchestra played the encore twice, because the applause would not stop.",
    "Sometimes the quickest way through the forest is the long way around it.",
    "The old printer only works if you talk to it nicely and feed it one sheet at a time.",
    "When the lights went out, the whole street came outside to look at the stars.",
    "I don't think we've met; I'm the one who fixed the elevator last year.",
    "The students weren't sure whether the test was on Friday or the Friday after.",
    "It's not the heat, it's the humidity, said every visitor that July.",
    "She'd already left by the time they'd realised the keys were still in the door.",
    "WE'LL BE THERE AT NINE, SAID THE SIGN, BUT NOBODY WAS THERE AT NINE.",
    "YOU'RE LATE AGAIN, THE TEACHER SAID; I'M SORRY, THE BOY REPLIED, IT'S THE BUS.",
    "They'Ve mixed the case on purpose: I'M, i'm, I'm, iT'S, It'S, WE'D, we'd.",
    "Once upon a time, there was a little girl named Lily who loved to play in the park.",
    "Once upon a time, there was a dog named Max. Max liked to run and play with his friends.",
    "One day, Tom found a shiny red ball under the big tree. He was very happy.",
    "The cat sat on the mat, and the mat was not amused.",
    "Mr. and Mrs. Smith arrived at 5 p.m. sharp, i.e. exactly on time, e.g. unlike last week.",
    "Questions? Answers! Exclamations!!! And ellipses... lots of them......",
    "\"Quoted,\" she said, 'single quoted,' and then «guillemets» and „low quotes“ and “curly ones”.",
    "Hyphenated-words, en–dashes, em—dashes, and a minus − sign walk into a bar.",
    "The URL was https://example.com/path?query=1&other=two#fragment and the email was someone@example.org.",
    "Markdown: **bold**, _italic_, `code`, [link](http://example.net), and a list:\n- one\n- two\n- three",
    "A tab\tseparated\tline\twith\tfive fields",
    "Trailing spaces after this sentence.   ",
    "   Leading spaces before this one.",
    "Two  spaces,   three   spaces,    four    spaces.",
    "Line one.\nLine two.\n\nLine four, after an empty line.",
    "Windows line endings\r\nare still common\r\nin old files.",
]

CODE = [
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
    "import os\n\nfor root, dirs, files in os.walk('.'):\n    print(root, len(files))",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)",
    "#include <stdio.h>\n\nint main(void) {\n\tprintf(\"hello, world\\n\");\n\treturn 0;\n}\n",
    "for (int i = 0; i < n; ++i) {\n    sum += a[i] * b[i];\n}",
    "template <typename T>\nT clamp(T v, T lo, T hi) { return v < lo ? lo : (v > hi ? hi : v); }",
    "std::vector<std::pair<int, std::string>> items{{1, \"one\"}, {2, \"two\"}};",
    "fn main() {\n    let v: Vec<u32> = (1..=10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}",
    "impl<'a> Iterator for Words<'a> {\n    type Item = &'a str;\n    fn next(&mut self) -> Option<Self::Item> { None }\n}",
    "const add = (a, b) => a + b;\nconsole.log(`sum: ${add(2, 3)}`);",
    "function debounce(fn, ms) {\n  let t;\n  return (...args) => {\n    clearTimeout(t);\n    t = setTimeout(() => fn(...args), ms);\n  };\n}",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"ok\")\n}",
    "public static void main(String[] args) {\n    System.out.println(args.length);\n}",
    "SELECT name, COUNT(*) AS n\nFROM orders\nWHERE created_at >= '2024-01-01'\nGROUP BY name\nORDER BY n DESC;",
    "#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do\n  wc -l \"$f\"\ndone",
    "<html>\n  <body>\n    <p class=\"note\">Hello &amp; welcome</p>\n  </body>\n</html>",
    "{\"name\": \"rabbit\", \"version\": [0, 1, 0], \"tags\": [\"llm\", \"cuda\"], \"ok\": true}",
    "x = [i**2 for i in range(10) if i % 2 == 0]  # squares of even numbers",
    "if (ptr == NULL) { return -EINVAL; } else if (len > MAX_LEN) { return -E2BIG; }",
    "    \t    mixed indentation\t\tand tabs\n\t\t\tdeeply\n",
    "let re = /^(?:[a-z0-9!#$%&'*+\\/=?^_`{|}~-]+)@example\\.com$/i;",
    "matrix = [[1, 2, 3],\n          [4, 5, 6],\n          [7, 8, 9]]",
    "// TODO(someone): handle the empty case\n/* multi-line\n   comment */",
    "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);",
    "git commit -m 'Fix the off-by-one in the ring buffer' && git push origin main",
    "__global__ void add(const float* a, const float* b, float* c, int n) {\n  int i = blockIdx.x * blockDim.x + threadIdx.x;\n  if (i < n) c[i] = a[i] + b[i];\n}",
]

CHINESE = [
    "今天天气很好，我们一起去公园散步吧。",
    "这本书我已经看了三遍，每一遍都有新的发现。",
    "他在火车站等了两个小时，朋友还是没有来。",
    "人工智能正在改变我们工作和生活的方式。",
    "请把窗户关上，外面的风太大了。",
    "我们明天上午九点在图书馆门口见面。",
    "她喜欢在周末做饭，尤其是做饺子。",
    "这个问题比我想象的要复杂得多。",
    "小猫躺在阳光下，睡得很香。",
    "学习一门新的语言需要时间和耐心。",
    "价格是一百二十八元，可以用手机支付。",
    "山上的雪还没有融化，路很滑，请小心。",
]

JAPANESE = [
    "今日はとても良い天気ですね。散歩に行きましょう。",
    "駅の近くに新しいパン屋さんができました。",
    "この本は三回読みましたが、毎回新しい発見があります。",
    "明日の会議は午後二時からです。遅れないでください。",
    "猫がこたつの中で丸くなって寝ています。",
    "カタカナとひらがなと漢字を混ぜて書くのが日本語です。",
    "東京から大阪まで新幹線で約二時間半かかります。",
    "すみません、この近くに郵便局はありますか？",
    "ラーメンを食べたいけど、ダイエット中なんだ。",
    "雨が降ってきたので、傘を持って行ってください。",
]

KOREAN = [
    "오늘 날씨가 정말 좋네요. 같이 산책하러 갈까요?",
    "이 책은 세 번 읽었는데 읽을 때마다 새로운 것을 발견해요.",
    "내일 회의는 오후 두 시에 시작합니다.",
    "고양이가 햇볕 아래에서 낮잠을 자고 있어요.",
    "한국어를 배우는 것은 재미있지만 어렵기도 해요.",
    "지하철역 근처에 새로운 카페가 생겼어요.",
    "비가 오니까 우산을 꼭 챙기세요.",
    "저는 매일 아침 커피 한 잔으로 하루를 시작해요.",
    "가격은 만 오천 원입니다.",
    "주말에는 가족과 함께 시간을 보내요.",
]

ARABIC = [
    "الطقس جميل اليوم، هيا نذهب في نزهة.",
    "قرأت هذا الكتاب ثلاث مرات وفي كل مرة أكتشف شيئاً جديداً.",
    "سيبدأ الاجتماع غداً في الساعة الثانية بعد الظهر.",
    "القطة نائمة تحت أشعة الشمس.",
    "تعلم لغة جديدة يحتاج إلى وقت وصبر.",
    "السعر مئة وعشرون ريالاً فقط.",
    "مرحباً بكم في مدينتنا الجميلة.",
    "النص العربي يُكتب من اليمين إلى اليسار، مع الأرقام ١٢٣ و 456.",
]

HINDI = [
    "आज मौसम बहुत अच्छा है, चलो टहलने चलते हैं।",
    "मैंने यह किताब तीन बार पढ़ी है और हर बार कुछ नया सीखा।",
    "कल की बैठक दोपहर दो बजे शुरू होगी।",
    "बिल्ली धूप में सो रही है।",
    "नई भाषा सीखने में समय और धैर्य लगता है।",
    "इसकी कीमत एक सौ बीस रुपये है।",
    "भारत में कई भाषाएँ बोली जाती हैं।",
    "हिन्दी के अंक ०१२३४५६७८९ भी होते हैं।",
]

OTHER_SCRIPTS = [
    "Привет, как дела? Сегодня отличная погода для прогулки.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Γειά σου κόσμε! Η γλώσσα έχει τόνους: ά έ ή ί ό ύ ώ.",
    "שלום עולם, זה טקסט בעברית.",
    "สวัสดีครับ วันนี้อากาศดีมาก",
    "Tiếng Việt có nhiều dấu: ắ ằ ẳ ẵ ặ ế ề ể ễ ệ ố ồ ổ ỗ ộ.",
    "Ελληνικά και English και Русский in one line.",
    "Straße, Übermaß, Ärger, Öl: deutsche Umlaute und das ß.",
    "Ça va? Où est la bibliothèque? À bientôt, François!",
    "¿Dónde está el baño? ¡Qué día tan bonito!",
    "Türkçe: ığüşöç İĞÜŞÖÇ, ve büyük I ile küçük ı.",
    "Ελλάδα, Ἀθῆναι, ῥῆμα: polytonic Greek.",
]

EMOJI = [
    "I love this! 😍😍😍",
    "Family: 👨‍👩‍👧‍👦 and couple: 👩‍❤️‍👨",
    "Pride flag 🏳️‍🌈 and pirate flag 🏴‍☠️",
    "Technologist 👩🏽‍💻 with a medium skin tone, and 👍🏿 👍🏻 👍",
    "Flags: 🇯🇵 🇫🇷 🇧🇷 🇮🇳 🇺🇸",
    "Keycaps: 1️⃣ 2️⃣ #️⃣ *️⃣",
    "Weather ☀️🌧️⛈️❄️ and food 🍕🍣🥟🌮",
    "🐇🐇🐇 rabbits all the way down 🐇",
    "Emoji without spaces:🙂🙃😉😊and text",
    "Heart variants ❤ ❤️ ♥ 💙 🖤",
]

NUMBERS = [
    "The meeting is on 2024-03-15 at 14:30:00 UTC.",
    "Dates: 15/03/2024, 03/15/2024, 15.03.2024, March 15th, 2024.",
    "Pi is about 3.14159265358979 and e is about 2.718281828.",
    "Population: 1,234,567 people; budget: $1,234,567.89; growth: 12.5%.",
    "Scientific: 6.022e23, 1e-10, 1.5E+08, -0.000001.",
    "Hex 0x1F, 0xDEADBEEF, octal 0o755, binary 0b1011.",
    "Phone: +1 (555) 123-4567, ext. 89.",
    "Version 1.2.3-rc.4+build.567 was released on 2023-11-05.",
    "1234567890 12345678901234567890 000123 007",
    "Room 101, floor 3, building 7B; coordinates 48.8566° N, 2.3522° E.",
    "10^6 = 1000000; 2^10 = 1024; 3 × 4 = 12; 10 ÷ 2 = 5; 5 ≥ 3 ≤ 7 ≠ 8.",
    "Fractions ½ ¼ ¾ and superscripts x² y³ and roman Ⅻ Ⅳ.",
    "Full-width digits １２３４５ and Arabic-Indic ٣٤٥ and Devanagari ४५६.",
    "Times: 9am, 9:00 AM, 21:00, 0900h.",
]

WHITESPACE = [
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n\n",
    " \n \n ",
    "\t\t\tindented by tabs",
    "word\t\tword\t \tword",
    "a  b   c    d     e",
    "trailing tab\t",
    "non-breaking\u00a0space and\u00a0\u00a0two of them",
    "em\u2003space, thin\u2009space, ideographic\u3000space",
    "next line\u0085character and line\u2028separator and paragraph\u2029separator",
    "zero\u200bwidth\u200bspace and\u200cnon-joiner and\u200djoiner",
    "\ufeffbyte order mark at the start",
    "soft\u00adhyphen and word\u2060joiner",
    "vertical\u000btab and form\u000cfeed",
    "carriage\rreturn alone",
    "   \t\n   mixed   \t\n",
    "end with newlines\n\n",
]

CONTRACTIONS = [
    "it's, It's, IT'S, iT's",
    "don't DON'T Don't",
    "we've WE'VE We've",
    "they'll THEY'LL They'll",
    "I'm I'M i'm",
    "you're YOU'RE You're",
    "she'd SHE'D She'd",
    "'s 't 're 've 'm 'll 'd",
    "'S 'T 'RE 'VE 'M 'LL 'D",
    "rock 'n' roll, o'clock, ma'am, y'all",
    "John's book and James' book and the Joneses' house",
    "can't won't shouldn't wouldn't couldn't",
]

SPECIALS = [
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "text before <|endoftext|> text after",
    "<|im_start|><|im_end|><|im_start|>",
    "partial tokens: <|im_ and im_start|> and <| and |>",
    "<think>\nreasoning here\n</think>\n\nThe answer is 42.",
    "<|start_story|>Once upon a time<|end_story|>",
    "<unk> <s> </s> <pad> [INST] [/INST] <<SYS>>",
    "nested <|<|im_end|>|> brackets",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    "<|vision_start|><|image_pad|><|vision_end|>",
    "special at the end <|im_end|>",
    "<|endoftext|>",
    "x<|im_end|>y",
    " <|im_start|> spaced <|im_end|> ",
]

COMBINING = [
    "e\u0301 vs \u00e9",
    "A\u030a vs \u00c5 vs \u212b (angstrom sign)",
    "n\u0303 and N\u0303 for Spanish \u00f1",
    "\u1100\u1161\u11a8 is a decomposed Hangul syllable",
    "o\u0308\u0301 stacked marks and a\u0323\u0302 Vietnamese",
    "\u2126 ohm sign and \u03a9 omega",
    "\ufb01 ligature stays, K\u212a kelvin",
    "cafe\u0301 cre\u0300me bru\u0302le\u0301e",
    "q\u0307\u0323 unusual order of marks",
    "\u0915\u093c Devanagari nukta",
    "\u00c5ngstr\u00f6m versus A\u030angstro\u0308m",
]

EDGE = [
    "",
    "a",
    "A",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "!!!!!!!!!! ?????????? .......... ----------",
    "~`!@#$%^&*()_+-={}[]|\\:;\"'<>,.?/",
    "\x00\x01\x02 control characters \x7f",
    "ALL CAPS SENTENCE WITH NUMBERS 123 AND SYMBOLS %$#",
    "mIxEd CaSe TeXt",
    "\u200f\u200eRTL and LTR marks\u202b embedded\u202c",
    "𝐌𝐚𝐭𝐡𝐞𝐦𝐚𝐭𝐢𝐜𝐚𝐥 𝑏𝑜𝑙𝑑 and 𝔣𝔯𝔞𝔨𝔱𝔲𝔯",
    "Ｆｕｌｌｗｉｄｔｈ　ｌｅｔｔｅｒｓ",
    "\U0001F600\U0001F601 astral plane",
    "\u0000",
]

SEPARATORS = [" ", "", "\n", "\t", "  ", "\n\n", " \n", ", ", ". ", "\r\n", " - ", "\u3000", "|"]


def main():
    rng = random.Random(20261121)
    groups = [PROSE, CODE, CHINESE, JAPANESE, KOREAN, ARABIC, HINDI, OTHER_SCRIPTS, EMOJI, NUMBERS, WHITESPACE,
              CONTRACTIONS, SPECIALS, COMBINING, EDGE]
    lines = []
    for g in groups:
        lines.extend(g)
    # Every fragment once more in upper and lower case where that changes it.
    for g in (PROSE, CONTRACTIONS, OTHER_SCRIPTS):
        for s in g:
            lines.extend({s.upper(), s.lower()} - {s})
    # Mixtures: fragments of different kinds, joined by assorted separators.
    pool = [s for g in groups for s in g if s]
    while len(lines) < 2200:
        k = rng.choice([2, 2, 3, 4])
        parts = [rng.choice(pool) for _ in range(k)]
        text = parts[0]
        for p in parts[1:]:
            text += rng.choice(SEPARATORS) + p
        if rng.random() < 0.15:
            text = " " * rng.randint(1, 3) + text
        if rng.random() < 0.15:
            text += rng.choice([" ", "\n", "\t", "  "])
        lines.append(text)
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "..", "tests", "data", "tokenizer", "corpus.jsonl")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for s in lines:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    print("%s: %d lines" % (os.path.normpath(out), len(lines)))


if __name__ == "__main__":
    main()
