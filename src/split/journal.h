// SPDX-License-Identifier: Apache-2.0
// The split journal, OUT/.rabbit-split.journal.json: what an unfinished `rabbit split` has
// done so far, so that a killed run resumes. It records each finished unit (file, size,
// checksum) and each source shard already removed by --delete-original, with the tensor
// table that planning still needs. Rewritten atomically after every unit; removed once the
// manifest is in place.
#pragma once

#include "format/hf_checkpoint.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rabbit {

struct JournalUnit {
    std::string unit;
    std::string file;
    uint64_t size = 0;
    uint64_t xxh3 = 0;
};

struct SplitJournal {
    std::string fingerprint;
    std::vector<JournalUnit> done;
    std::vector<DeletedShard> deleted;

    const JournalUnit* find(const std::string& unit) const;
    std::string to_json() const;
    static SplitJournal parse(const std::string& text, const std::string& file);
};

constexpr const char* k_journal_file = ".rabbit-split.journal.json";

// Reads OUT's journal; nullopt when there is none. A journal that does not parse is reported
// and ignored (nullopt) unless it is needed to find deleted shards, which the caller decides.
std::optional<SplitJournal> read_journal(const std::string& out_dir, std::string* problem);
void write_journal(const std::string& out_dir, const SplitJournal& j);

} // namespace rabbit
