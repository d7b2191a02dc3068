// SPDX-License-Identifier: Apache-2.0
#include "cli/progress.h"

#include "common/timing.h"
#include "common/units.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <unistd.h>

namespace rabbit {

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

void PrefillDisplay::update(const PrefillProgress& p) {
    if (!started_) { // a new prompt
        started_ = true;
        start_ = Clock::now();
    }
    const auto now = Clock::now();
    if (seconds_since(start_) < 1.0 || (drawn_ && now - last_ < std::chrono::milliseconds(100))) return;
    last_ = now;
    drawn_ = true;
    std::fprintf(stderr, "\r\033[Kprefill: layer %zu/%zu, %zu of %zu prompt tokens done", p.layer, p.layers,
                 p.tokens_done, p.tokens);
    std::fflush(stderr);
}

void PrefillDisplay::clear() {
    if (drawn_) {
        std::fputs("\r\033[K", stderr);
        std::fflush(stderr);
    }
    started_ = drawn_ = false;
}

void ConsoleProgress::start(uint64_t total_bytes, size_t units) {
    total_ = total_bytes;
    units_ = units;
    done_ = 0;
    units_done_ = 0;
    start_ = Clock::now();
    last_draw_ = start_ - std::chrono::seconds(1);
}

void ConsoleProgress::advance(uint64_t bytes) {
    done_ += bytes;
    draw(false);
}

void ConsoleProgress::unit_done(const std::string& unit, uint64_t bytes, bool reused) {
    ++units_done_;
    current_ = unit;
    if (lines_) {
        clear();
        spdlog::info("[{}/{}] {} {} ({})", units_done_, units_, reused ? "kept" : "wrote", unit, format_bytes(bytes));
    }
    draw(true);
}

void ConsoleProgress::finish() { clear(); }

void ConsoleProgress::clear() {
    if (!drawn_) return;
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    drawn_ = false;
}

void ConsoleProgress::draw(bool force) {
    if (!bar_) return;
    const auto now = Clock::now();
    if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const double elapsed = seconds_since(start_);
    const double frac = total_ ? double(done_) / double(total_) : 1.0;
    const double rate = elapsed > 0 ? double(done_) / elapsed : 0;
    const double eta = rate > 0 ? double(total_ - std::min(done_, total_)) / rate : -1;
    constexpr int width = 24;
    const int filled = int(frac * width + 0.5);
    std::string bar(size_t(filled), '#');
    bar.append(size_t(width - filled), '-');
    const std::string line = fmt::format("\r\033[K[{}] {:3d}% {} / {}  {}  ETA {}  {}/{} units", bar, int(frac * 100 + 0.5),
                                         format_bytes(done_), format_bytes(total_), format_rate(rate),
                                         eta >= 0 ? format_duration(eta) : "-", units_done_, units_);
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
    drawn_ = true;
}

} // namespace rabbit
