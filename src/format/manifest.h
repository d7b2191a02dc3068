// SPDX-License-Identifier: Apache-2.0
// manifest.json, the table of contents of a split model directory: the normalized config and,
// for each unit, its file, size, checksum and tensor table. Written last by `rabbit split`, so
// it never names a missing or partial file. Documented in docs/FORMAT.md.
#pragma once

#include "format/hf_checkpoint.h"
#include "format/unit_file.h"
#include "model/config.h"
#include "model/layout.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rabbit {

struct ManifestUnit {
    UnitLayout layout; // name, tensor table, data offset and size
    UnitKind kind = UnitKind::layer;
    uint32_t layer = 0;
    std::string file;
    uint64_t xxh3 = 0; // XXH3-64 of the whole file

    uint64_t size() const { return layout.file_size(); }
};

struct Manifest {
    uint32_t format_version = k_split_format_version;
    std::string created_by;         // "rabbit 0.1.0"
    std::string source_fingerprint; // identifies the source checkpoint and split options
    std::string dtype;              // the matrices' dtype: f32, f16, bf16, or "mixed" (--dtype keep)
    ModelConfig config;
    std::vector<ManifestUnit> units; // streaming order
    std::vector<std::string> files;  // companion files copied beside the units
    // Source shards `split --delete-original` removed, with what planning needs of them, so
    // that running the same split again still recognises its source.
    std::vector<DeletedShard> deleted_sources;

    std::string to_json() const;
    static Manifest parse(const std::string& text, const std::string& file);

    uint64_t total_bytes() const;
    const ManifestUnit* find(const std::string& unit) const;
};

constexpr const char* k_manifest_file = "manifest.json";

std::string hex64(uint64_t v);
bool parse_hex64(const std::string& s, uint64_t* v);

} // namespace rabbit
