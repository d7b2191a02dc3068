// SPDX-License-Identifier: Apache-2.0
// `rabbit pull`'s progress on stderr: on a terminal a bar redrawn in place with the current
// file's bytes, rate and ETA and the total's; elsewhere one line per file; nothing under -q.
#pragma once

#include "common/timing.h"
#include "hub/pull.h"

#include <string>

namespace rabbit {

class ConsolePullProgress : public PullProgress {
public:
    ConsolePullProgress(bool bar, bool lines) : bar_(bar), lines_(lines) {}

    void start(uint64_t total_bytes, uint64_t cached_bytes, size_t files) override;
    void file_start(const std::string& path, uint64_t size, uint64_t resumed_at) override;
    void advance(uint64_t bytes) override;
    void file_done(const std::string& path, bool was_cached) override;
    void retry(const std::string& path, const std::string& why) override;
    void finish() override;
    // After a failure: wipes the bar, prints no summary.
    void abandon();

private:
    void draw(bool force);
    void clear();

    bool bar_, lines_;
    uint64_t total_ = 0, done_ = 0, fetched_ = 0; // fetched_: bytes this run, for the rate
    uint64_t file_size_ = 0, file_done_ = 0;
    size_t files_ = 0, files_done_ = 0;
    std::string file_;
    Clock::time_point start_, file_start_, last_draw_;
    uint64_t file_fetched_ = 0;
    bool drawn_ = false;
};

} // namespace rabbit
