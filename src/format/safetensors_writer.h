// SPDX-License-Identifier: Apache-2.0
// Writes safetensors files: the model generator's output and the tests' fixtures.
#pragma once

#include "common/dtype.h"
#include "common/file_io.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rabbit {

struct SafetensorsSpec {
    std::string name;
    DType dtype;
    std::vector<uint64_t> shape;
    uint64_t nbytes() const;
};

// The header JSON (padded with spaces to a multiple of 8, as the reference writer does)
// preceded by its 8-byte length, for tensors laid out back to back in the given order.
std::string safetensors_header_bytes(const std::vector<SafetensorsSpec>& tensors,
                                     const std::map<std::string, std::string>& metadata);

// Streams a safetensors file: the header on construction, then each tensor's bytes in the
// order given, in as many append() calls as the caller likes. commit() checks that every
// byte was supplied and renames the file into place.
class SafetensorsWriter {
public:
    SafetensorsWriter(const std::string& path, std::vector<SafetensorsSpec> tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
    void append(const void* data, size_t n);
    // Leaves every byte not yet appended as a hole that reads as zeros: fast files whose
    // headers matter and whose values do not (planning tests).
    void fill_with_holes();
    void commit();

private:
    OutputFile out_;
    uint64_t expected_ = 0;
};

} // namespace rabbit
