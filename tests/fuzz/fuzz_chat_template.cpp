// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the Jinja interpreter: any bytes as a chat template, parsed and, when
// they parse, rendered over a small conversation. Every failure must be rabbit's one-line
// Error (a syntax error, an unsupported construct, a runtime error), never a crash, a hang or
// another exception.
#include "common/error.h"
#include "tokenizer/jinja.h"

#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 8192) return 0;
    const std::string source(reinterpret_cast<const char*>(data), size);
    using rabbit::jinja::Value;
    const rabbit::jinja::Dict vars = {
        {"messages", Value(rabbit::jinja::List{Value(rabbit::jinja::Dict{{"role", Value("system")}, {"content", Value("S")}}),
                                               Value(rabbit::jinja::Dict{{"role", Value("user")}, {"content", Value("Hi ü")}})})},
        {"add_generation_prompt", Value(true)},
        {"tools", Value::none()},
        {"bos_token", Value("<s>")}};
    try {
        const rabbit::jinja::Template t(source, "fuzz.jinja");
        const std::string out = t.render(vars);
        if (out.size() > (size_t(1) << 30)) std::abort();
    } catch (const rabbit::Error& e) {
        if (std::string(e.what()).find('\n') != std::string::npos) std::abort(); // one line
    }
    return 0;
}
