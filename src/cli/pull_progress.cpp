// SPDX-License-Identifier: Apache-2.0
#include "cli/pull_progress.h"

#include "common/units.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace rabbit {

namespace {

std::string eta(uint64_t left, double rate) {
    if (rate <= 0) return "--";
    return format_duration(double(left) / rate);
}

} // namespace

void ConsolePullProgress::start(uint64_t total_bytes, uint64_t cached_bytes, size_t files) {
    total_ = total_bytes;
    done_ = cached_bytes;
    files_ = files;
    start_ = Clock::now();
    last_draw_ = start_ - std::chrono::seconds(1);
    if (lines_) spdlog::info("{} files, {} ({} already in the cache)", files, format_bytes(total_bytes), format_bytes(cached_bytes));
}

void ConsolePullProgress::file_start(const std::string& path, uint64_t size, uint64_t resumed_at) {
    file_ = path;
    file_size_ = size;
    file_done_ = resumed_at;
    file_fetched_ = 0;
    file_start_ = Clock::now();
    if (lines_ && resumed_at > 0) spdlog::info("{}: resuming at {} of {}", path, format_bytes(resumed_at), format_bytes(size));
    draw(true);
}

void ConsolePullProgress::advance(uint64_t bytes) {
    file_done_ += bytes;
    file_fetched_ += bytes;
    done_ += bytes;
    fetched_ += bytes;
    draw(false);
}

void ConsolePullProgress::file_done(const std::string& path, bool was_cached) {
    ++files_done_;
    if (lines_) {
        clear();
        spdlog::info("[{}/{}] {} {}", files_done_, files_, was_cached ? "cached" : "fetched", path);
    }
    draw(true);
}

void ConsolePullProgress::retry(const std::string& path, const std::string& why) {
    clear();
    spdlog::warn("{}: {}; resuming at {}", path, why, format_bytes(file_done_));
}

void ConsolePullProgress::finish() {
    clear();
    const double s = seconds_since(start_);
    if (lines_ || bar_)
        spdlog::info("pulled {} files: {} fetched in {} ({})", files_, format_bytes(fetched_), format_duration(s),
                     format_rate(s > 0 ? double(fetched_) / s : 0));
}

void ConsolePullProgress::abandon() { clear(); }

void ConsolePullProgress::draw(bool force) {
    if (!bar_) return;
    const auto now = Clock::now();
    if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const double fs = seconds_since(file_start_), ts = seconds_since(start_);
    const double file_rate = fs > 0 ? double(file_fetched_) / fs : 0, rate = ts > 0 ? double(fetched_) / ts : 0;
    const int pct = total_ ? int(100.0 * double(done_) / double(total_)) : 100;
    const std::string line = fmt::format(
        "{} {}/{} {} ETA {} | total {}% {}/{} ETA {} [{}/{} files]", file_, format_bytes(file_done_), format_bytes(file_size_),
        format_rate(file_rate), eta(file_size_ - std::min(file_size_, file_done_), file_rate), pct, format_bytes(done_),
        format_bytes(total_), eta(total_ - std::min(total_, done_), rate), files_done_, files_);
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
    drawn_ = true;
}

void ConsolePullProgress::clear() {
    if (!drawn_) return;
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    drawn_ = false;
}

} // namespace rabbit
