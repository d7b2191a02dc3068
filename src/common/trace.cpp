// SPDX-License-Identifier: Apache-2.0
#include "common/trace.h"

#include "common/file_io.h"
#include "common/json_writer.h"
#include "common/timing.h"

#include <spdlog/fmt/fmt.h>

#include <mutex>
#include <vector>

namespace rabbit::trace {

namespace detail {
std::atomic<bool> on{false};
}

namespace {

struct Event {
    Track track;
    std::string name, args;
    double t0, dur;
};

struct State {
    std::mutex mutex;
    std::string path;
    Clock::time_point origin;
    std::vector<Event> events;
};

State& state() {
    static State s;
    return s;
}

constexpr Track k_tracks[] = {Track::loader, Track::host_copy, Track::copy_engine, Track::compute, Track::tokens};

} // namespace

const char* track_name(Track t) {
    switch (t) {
    case Track::loader: return "loader (unit files)";
    case Track::host_copy: return "host copy (ring slots)";
    case Track::copy_engine: return "copy engine (host to GPU)";
    case Track::compute: return "compute";
    case Track::tokens: return "tokens";
    }
    return "?";
}

void start(const std::string& path) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    s.path = path;
    s.origin = Clock::now();
    s.events.clear();
    detail::on.store(true);
}

double now_us() {
    return std::chrono::duration<double, std::micro>(Clock::now() - state().origin).count();
}

void complete(Track track, const std::string& name, double t0_us, double dur_us, const std::string& args) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    if (!enabled()) return;
    s.events.push_back({track, name, args, t0_us, dur_us < 0 ? 0 : dur_us});
}

void finish() {
    State& s = state();
    std::vector<Event> events;
    std::string path;
    {
        std::lock_guard<std::mutex> lock(s.mutex);
        if (!enabled()) return;
        detail::on.store(false);
        events.swap(s.events);
        path = s.path;
    }
    // The trace-event format's JSON object form: metadata naming the process and each track
    // (sorted in this order), then complete ("X") events, times in microseconds.
    std::string out = "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
    out += R"({"name": "process_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": "rabbit"}})";
    for (Track t : k_tracks) {
        out += fmt::format(",\n{{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": {}, \"args\": {{\"name\": {}}}}}",
                           int(t), json_escape(track_name(t)));
        out += fmt::format(",\n{{\"name\": \"thread_sort_index\", \"ph\": \"M\", \"pid\": 1, \"tid\": {}, \"args\": "
                           "{{\"sort_index\": {}}}}}",
                           int(t), int(t));
    }
    for (const Event& e : events) {
        out += fmt::format(",\n{{\"name\": {}, \"ph\": \"X\", \"pid\": 1, \"tid\": {}, \"ts\": {:.3f}, \"dur\": {:.3f}",
                           json_escape(e.name), int(e.track), e.t0, e.dur);
        if (!e.args.empty()) out += ", \"args\": {" + e.args + "}";
        out += "}";
    }
    out += "\n]}\n";
    write_file_atomic(path, out);
}

} // namespace rabbit::trace
