// SPDX-License-Identifier: Apache-2.0
#include "format/gguf_tokenizer.h"

#include "common/error.h"

namespace rabbit {

TokenizerFiles tokenizer_files_from_gguf(const GgufVocab& v, const std::string& file) {
    throw unsupported(file, "GGUF tokenizer model '" + v.model + "' is not supported yet");
}

} // namespace rabbit
