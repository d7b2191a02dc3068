// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the GGUF parser (header, metadata of every type, tensor table) and the
// mapping of its metadata onto a model config must reject any input with an Error, never
// crash, hang, allocate beyond the input's size or read out of bounds, and every file it
// accepts must hold its invariants.
#include "common/error.h"
#include "format/gguf.h"
#include "format/gguf_import.h"

#include <cstdlib>

namespace {

// Every getter over every value, as the importer may call them.
void touch(const rabbit::GgufValue& v) {
    (void)v.as_int();
    (void)v.as_number();
    (void)v.as_bool();
    (void)v.as_string();
    if (v.type != rabbit::GgufType::array) return;
    if (!v.raw.empty() || v.items.empty()) {
        for (uint64_t i = 0; i < v.count; ++i) {
            (void)v.int_at(i);
            (void)v.number_at(i);
        }
        (void)v.int_at(v.count); // one past the end: nullopt, not a read
    }
    if (v.items.size() != (v.raw.empty() ? v.count : 0)) std::abort();
    for (const auto& item : v.items) touch(item);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        rabbit::GgufFile f = rabbit::GgufFile::parse(data, size, "fuzz.gguf");
        if (f.alignment() == 0 || (f.alignment() & (f.alignment() - 1)) != 0) std::abort();
        if (f.data_start() % f.alignment() != 0) std::abort();
        for (const auto& t : f.tensors()) {
            if (t.offset < f.data_start() || t.offset > size || t.nbytes > size - t.offset) std::abort();
            if ((t.offset - f.data_start()) % f.alignment() != 0) std::abort();
            if (t.ne.empty() || t.ne.size() > 4 || t.shape.size() != t.ne.size()) std::abort();
            if (t.shape.front() != t.ne.back() || t.shape.back() != t.ne.front()) std::abort();
            if (rabbit::shape_bytes(t.shape, t.dtype) != t.nbytes) std::abort();
            (void)rabbit::hf_name_of_gguf_tensor(t.name);
        }
        for (const auto& kv : f.metadata()) touch(kv.second);
        rabbit::GgufSet set;
        set.parts.push_back(std::move(f));
        (void)rabbit::gguf_config_json(set);
    } catch (const rabbit::Error& e) {
        if (e.code() == rabbit::ExitCode::internal) std::abort(); // an invariant broke: a bug
    }
    return 0;
}
