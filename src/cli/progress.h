// SPDX-License-Identifier: Apache-2.0
// Progress of long operations on stderr: a bar redrawn in place on a terminal (bytes, rate,
// ETA), one plain line per finished piece otherwise (logs, CI), nothing under -q.
#pragma once

#include "common/timing.h"
#include "engine/engine.h"
#include "split/splitter.h"

#include <string>

namespace rabbit {

class ConsoleProgress : public SplitProgress {
public:
    // bar: draw the in-place bar (stderr is a terminal and not -q); lines: log each unit.
    ConsoleProgress(bool bar, bool lines) : bar_(bar), lines_(lines) {}

    void start(uint64_t total_bytes, size_t units) override;
    void advance(uint64_t bytes) override;
    void unit_done(const std::string& unit, uint64_t bytes, bool reused) override;
    void finish() override;

private:
    void draw(bool force);
    void clear();

    bool bar_, lines_;
    uint64_t total_ = 0, done_ = 0;
    size_t units_ = 0, units_done_ = 0;
    std::string current_;
    Clock::time_point start_, last_draw_;
    bool drawn_ = false;
};

// A long prefill's progress, redrawn in place on stderr (a terminal only): the layer of the
// current pass and the prompt tokens done. Drawn once the prompt has run for a second, at
// most every 0.1 s; clear() wipes it (before the answer is printed).
class PrefillDisplay {
public:
    void update(const PrefillProgress& p);
    void clear();

private:
    Clock::time_point start_ = Clock::now(), last_;
    bool started_ = false, drawn_ = false;
};

// Whether stderr is a terminal.
bool stderr_is_terminal();

} // namespace rabbit
