// SPDX-License-Identifier: Apache-2.0
#include "common/error.h"
#include "common/file_io.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/sp_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace rabbit {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
    if (!is_directory(dir)) throw bad_input(dir, path_exists(dir) ? "is not a directory" : "no such directory");
    const std::string config_path = join_path(dir, "tokenizer_config.json");
    std::optional<std::string> config;
    if (path_exists(config_path)) config = read_text_file(config_path);
    const std::string json = join_path(dir, "tokenizer.json");
    if (path_exists(json)) return HfTokenizer::load(json, config, config_path);
    const std::string model = join_path(dir, "tokenizer.model");
    if (path_exists(model)) return SpTokenizer::load(model, config, config_path);
    throw bad_input(json, "no such file, and no tokenizer.model either: this model directory has no tokenizer");
}

} // namespace rabbit
