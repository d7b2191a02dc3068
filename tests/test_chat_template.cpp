// SPDX-License-Identifier: Apache-2.0
// The real chat templates of the families rabbit runs, rendered by rabbit's Jinja interpreter,
// against what jinja2 renders through transformers' apply_chat_template
// (scripts/chat_template_reference.py wrote tests/data/chat_templates/*.expected.json): byte
// for byte, multi-turn, with and without system prompts, thinking on and off, tools.
#include "common/error.h"
#include "common/json_read.h"
#include "helpers.h"
#include "tokenizer/chat.h"

#include <catch2/catch.hpp>

#include <ctime>

using namespace rabbit;
using Catch::Matchers::Contains;

namespace {

std::string templates_dir() { return test::source_dir() + "/tests/data/chat_templates"; }

// "2025-03-14T09:26:53" as a struct tm.
std::tm parse_moment(const std::string& iso) {
    std::tm tm{};
    REQUIRE(strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr);
    return tm;
}

struct Outcome {
    size_t cases = 0, errors = 0;
};

Outcome check_template(const std::string& name) {
    const std::string path = templates_dir() + "/" + name + ".expected.json";
    JsonDocument doc(test::read_file(path), path);
    const auto root = doc.root_object();
    const std::string jinja_path = templates_dir() + "/" + json_to_string(*json_field(root, "template"), path, "template");
    const ChatTemplate t = detect_chat_template_text(test::read_file(jinja_path), jinja_path);
    ChatOptions options;
    options.now = parse_moment(json_to_string(*json_field(root, "strftime_now"), path, "strftime_now"));
    Outcome out;
    for (auto c : json_to_array(*json_field(root, "cases"), path, "cases")) {
        const auto obj = json_to_object(c, path, "case");
        const std::string case_name = json_to_string(*json_field(obj, "name"), path, "name");
        INFO(name << ": " << case_name);
        const jinja::Value context = jinja_value_from_json(*json_field(obj, "context"));
        ++out.cases;
        if (auto error = json_field(obj, "error")) {
            // The template's raise_exception: rabbit refuses with the template's own message.
            const std::string want = json_to_string(*error, path, "error");
            const std::string message = want.substr(want.find(": ") + 2);
            try {
                render_chat_context(t, context.as_dict(), options);
                FAIL("no error; jinja2 raised " << want);
            } catch (const Error& e) {
                CHECK(e.code() == ExitCode::bad_input);
                CHECK_THAT(e.what(), Contains(message));
            }
            ++out.errors;
            continue;
        }
        const std::string want = json_to_string(*json_field(obj, "output"), path, "output");
        CHECK(render_chat_context(t, context.as_dict(), options) == want);
    }
    return out;
}

} // namespace

TEST_CASE("real chat templates render as jinja2 renders them in apply_chat_template", "[tokenizer][chat][jinja]") {
    const char* const names[] = {"Qwen-Qwen2.5-7B-Instruct",
                                 "Qwen-Qwen3-0.6B",
                                 "Qwen-QwQ-32B",
                                 "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
                                 "meta-llama-Llama-3.1-8B-Instruct",
                                 "meta-llama-Llama-3.2-3B-Instruct",
                                 "meta-llama-Llama-3.3-70B-Instruct",
                                 "mistralai-Mistral-7B-Instruct-v0.3",
                                 "HuggingFaceTB-SmolLM2-135M-Instruct"};
    size_t total = 0;
    for (const char* name : names) {
        SECTION(name) {
            const Outcome o = check_template(name);
            CHECK(o.cases >= 12);
            total += o.cases;
        }
    }
}

TEST_CASE("the model's template comes from chat_template.jinja, then tokenizer_config.json", "[tokenizer][chat][jinja]") {
    test::TempDir dir;
    test::write_file(dir / "tokenizer_config.json",
                     R"({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "pad_token": null,)"
                     R"( "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": )"
                     R"("{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}{{ eos_token }}"}]})");
    ChatTemplate t = detect_chat_template(dir.path());
    CHECK(t.source == dir / "tokenizer_config.json");
    REQUIRE(t.special_tokens.size() == 2);
    CHECK(render_chat(t, {{"user", "hi"}}, {}) == "<s>[user] hi</s>");
    test::write_file(dir / "chat_template.jinja", "{{ messages | length }} {{ add_generation_prompt }}\n");
    t = detect_chat_template(dir.path());
    CHECK(t.source == dir / "chat_template.jinja");
    ChatOptions o;
    o.add_generation_prompt = false;
    CHECK(render_chat(t, {{"system", "s"}, {"user", "hi"}}, o) == "2 False"); // one trailing newline dropped, as jinja2 does
}

TEST_CASE("the family writers of --chat-format write a conversation in the family's format", "[tokenizer][chat]") {
    ChatTemplate t;
    ChatOptions o;
    o.format = ChatFormat::chatml;
    const std::vector<ChatMessage> conv = {{"system", "S"}, {"user", "U1"}, {"assistant", "A1"}, {"user", "U2"}};
    CHECK(render_chat(t, conv, o) ==
          "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
          "<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n");
    o.format = ChatFormat::llama3;
    CHECK(render_chat(t, conv, o) ==
          "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>"
          "\n\nU1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|><|start_header_id|>user"
          "<|end_header_id|>\n\nU2<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    o.format = ChatFormat::llama2;
    CHECK(render_chat(t, conv, o) == "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU1 [/INST] A1 </s><s>[INST] U2 [/INST]");
    o.format = ChatFormat::mistral;
    CHECK(render_chat(t, conv, o) == "<s>[INST] S\n\nU1 [/INST] A1</s>[INST] U2 [/INST]");
    CHECK_THROWS_WITH(render_chat(t, {{"user", "a"}, {"user", "b"}}, o), Contains("message 2 is 'user'"));
    CHECK(parse_chat_format("llama2") == ChatFormat::llama2);
    CHECK(!parse_chat_format("jinja"));
    // No template and no --chat-format: a clear refusal that names the fallback.
    CHECK_THROWS_WITH(render_chat(t, conv, {}), Contains("--chat-format chatml|llama3|llama2|mistral"));
}
