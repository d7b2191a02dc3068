// SPDX-License-Identifier: Apache-2.0
// rabbit-gguf-vocab: a GGUF's tokenizer.ggml.* (dumped as JSON by scripts/gguf_tokenizer_check.py)
// to the Hugging Face tokenizer files that splitting that GGUF writes. A development tool: it
// lets the check script compare rabbit's conversion with the original tokenizers on its own.
//   rabbit-gguf-vocab VOCAB.json OUTDIR
// VOCAB.json: {"model", "pre", "tokens", "scores", "token_type", "merges", "bos", "eos", "unk",
// "pad", "eot", "add_bos", "add_eos", "add_space_prefix", "chat_template"}, absent keys or null
// for what the GGUF lacks.
#include "common/error.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "format/gguf_tokenizer.h"

#include <spdlog/fmt/fmt.h>

using namespace rabbit;
using simdjson::dom::object;

namespace {

GgufVocab read_vocab(const std::string& path) {
    const std::string text = read_text_file(path);
    JsonDocument doc(text, path);
    object o = doc.root_object();
    GgufVocab v;
    auto get = [&](const char* key) {
        auto e = json_field(o, key);
        return e && !e->is_null() ? e : std::nullopt;
    };
    if (auto e = get("model")) v.model = json_to_string(*e, path, "model");
    if (auto e = get("pre")) v.pre = json_to_string(*e, path, "pre");
    if (auto e = get("tokens"))
        for (auto t : json_to_array(*e, path, "tokens")) v.tokens.push_back(json_to_string(t, path, "token"));
    if (auto e = get("scores"))
        for (auto t : json_to_array(*e, path, "scores")) v.scores.push_back(float(json_to_double(t, path, "score")));
    if (auto e = get("token_type"))
        for (auto t : json_to_array(*e, path, "token_type")) v.token_type.push_back(int32_t(json_to_int(t, path, "type")));
    if (auto e = get("merges"))
        for (auto t : json_to_array(*e, path, "merges")) v.merges.push_back(json_to_string(t, path, "merge"));
    for (auto [key, dst] : {std::pair<const char*, std::optional<int64_t>*>{"bos", &v.bos}, {"eos", &v.eos},
                            {"unk", &v.unk}, {"pad", &v.pad}, {"eot", &v.eot}})
        if (auto e = get(key)) *dst = json_to_int(*e, path, key);
    for (auto [key, dst] : {std::pair<const char*, std::optional<bool>*>{"add_bos", &v.add_bos},
                            {"add_eos", &v.add_eos}, {"add_space_prefix", &v.add_space_prefix}})
        if (auto e = get(key)) *dst = json_to_bool(*e, path, key);
    if (auto e = get("chat_template")) v.chat_template = json_to_string(*e, path, "chat_template");
    return v;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        fmt::print(stderr, "usage: rabbit-gguf-vocab VOCAB.json OUTDIR\n");
        return int(ExitCode::usage);
    }
    try {
        const std::string out = argv[2];
        const TokenizerFiles f = tokenizer_files_from_gguf(read_vocab(argv[1]), argv[1]);
        make_directories(out);
        write_file_atomic(join_path(out, "tokenizer.json"), f.tokenizer_json);
        write_file_atomic(join_path(out, "tokenizer_config.json"), f.tokenizer_config_json);
        write_file_atomic(join_path(out, "generation_config.json"), f.generation_config_json);
        return 0;
    } catch (const Error& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return int(e.code());
    }
}
