// SPDX-License-Identifier: Apache-2.0
// A split model directory as `rabbit split` wrote it: opening it checks the manifest against
// the config (every unit and tensor the model needs, with the right shapes) and against the
// files (each present, of the recorded size, with the recorded header). Checksums are
// verified on request, since that reads every byte.
#pragma once

#include "format/manifest.h"

#include <string>

namespace rabbit {

class SplitModel {
public:
    static SplitModel open(const std::string& dir);

    const std::string& dir() const { return dir_; }
    const Manifest& manifest() const { return manifest_; }
    const ModelConfig& config() const { return manifest_.config; }
    std::string unit_path(const ManifestUnit& u) const;
    // Which unit is the embedding, each layer, the final norm and the output projection.
    const UnitRoles& roles() const { return roles_; }
    // Whether unit i is read whole by every decoded token (streams_per_token).
    bool streams_per_token(size_t i) const;

    // Re-reads the unit file and compares its XXH3-64 with the manifest's; throws
    // bad_input naming the unit and file on a mismatch.
    void verify_checksum(const ManifestUnit& u) const;

private:
    std::string dir_;
    Manifest manifest_;
    UnitRoles roles_;
};

bool is_split_dir(const std::string& dir);

// Checks that the units match what model_units(config) needs: the same units in the same
// order, each with the needed tensors of the needed shapes. Throws bad_input(file, ...).
void check_units_match_config(const Manifest& m, const std::string& file);

// XXH3-64 of a whole file, read sequentially in large blocks. from_disk: evict the file from
// the page cache first and as it is read, so the hash is of what the disk holds (the file
// must have been synced, or its dirty pages stay cached).
uint64_t hash_file(const std::string& path, bool from_disk = false);

} // namespace rabbit
