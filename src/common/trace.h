// SPDX-License-Identifier: Apache-2.0
// The timeline trace (`--trace FILE.json`): spans of work on a few tracks, written as a
// Chrome trace-event file that Perfetto (ui.perfetto.dev) and chrome://tracing open. Each
// track is a "thread" of one process: the loader (reading units from their files), the host
// copy (filling the pinned ring slots), the copy engine (host to GPU), compute (a span per
// unit of each pass), and tokens (a span per forward pass: the prompt, then each token).
// Off unless started: a span then costs one relaxed load.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace rabbit::trace {

enum class Track { loader = 1, host_copy, copy_engine, compute, tokens };
const char* track_name(Track t);

namespace detail {
extern std::atomic<bool> on;
}
inline bool enabled() { return detail::on.load(std::memory_order_relaxed); }

// Starts recording (the time origin is now), to be written to `path` by finish().
void start(const std::string& path);
// Writes what was recorded to the path start() was given (atomically: the file is whole or
// absent) and stops. Nothing when not started. Throws Error(io) when the file cannot be
// written.
void finish();
// Microseconds since start().
double now_us();
// A span of `name` on a track, [t0, t0 + dur) in microseconds since start(). `args`: a JSON
// object's members without the braces (`"bytes": 4096`), or empty.
void complete(Track track, const std::string& name, double t0_us, double dur_us, const std::string& args = {});

// A span from construction to destruction, recorded only when tracing.
class Span {
public:
    Span(Track track, const char* name) : Span(track, enabled() ? std::string(name) : std::string()) {}
    Span(Track track, std::string name) : track_(track), on_(enabled()) {
        if (on_) name_ = std::move(name), t0_ = now_us();
    }
    ~Span() {
        if (on_) complete(track_, name_, t0_, now_us() - t0_, args_);
    }
    void set_args(std::string args) { args_ = std::move(args); }
    Span(const Span&) = delete;
    Span& operator=(const Span&) = delete;

private:
    Track track_;
    bool on_;
    std::string name_, args_;
    double t0_ = 0;
};

} // namespace rabbit::trace
