// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the tokenizer pipeline: any bytes, valid UTF-8 or not, through the
// real Qwen and tinystories-656k tokenizers and a Metaspace/byte-fallback one. Encoding must
// not crash; decoding the ids must equal what the streaming decoder emits piece by piece, and
// every piece it emits must be whole UTF-8.
#include "common/error.h"
#include "tokenizer/tokenizer.h"
#include "common/utf8.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

namespace {
std::vector<std::unique_ptr<rabbit::Tokenizer>>& tokenizers() {
    static std::vector<std::unique_ptr<rabbit::Tokenizer>> t;
    return t;
}
} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // The real tokenizers live in ../shared, which a user's clone lacks: fuzz what there is.
    for (const char* dir : {"/tokenizers/qwen3", "/models/tinystories-656k"}) {
        const std::string path = std::string(RABBIT_SHARED_DIR) + dir;
        if (::access((path + "/tokenizer.json").c_str(), R_OK) == 0)
            tokenizers().push_back(rabbit::load_tokenizer(path));
        else
            std::fprintf(stderr, "SKIPPED: %s: not in this clone\n", path.c_str());
    }
    tokenizers().push_back(
        rabbit::load_tokenizer(std::string(RABBIT_SOURCE_DIR) + "/tests/data/tokenizer/synthetic/metaspace-first"));
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1 || size > 4096) return 0;
    const rabbit::Tokenizer& tok = *tokenizers()[data[0] % tokenizers().size()];
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
    const std::vector<int32_t> ids = tok.encode(text, (data[0] & 0x80) != 0);
    for (int32_t id : ids)
        if (id < 0 || size_t(id) >= tok.vocab_size()) std::abort();
    for (bool skip : {true, false}) {
        rabbit::StreamDecoder stream(tok, skip);
        std::string all;
        for (int32_t id : ids) {
            const std::string piece = stream.push(id);
            if (!rabbit::utf8_valid(piece)) std::abort();
            all += piece;
        }
        all += stream.finish();
        if (all != tok.decode(ids, skip)) std::abort();
    }
    return 0;
}
