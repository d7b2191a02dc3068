// SPDX-License-Identifier: Apache-2.0
#include "common/fault.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace rabbit {

namespace {

enum class FaultKind { none, enospc, kill, sigint, free_bytes };

struct FaultPlan {
    FaultKind kind = FaultKind::none;
    uint64_t bytes = 0;
};

FaultPlan parse_fault_plan() {
    FaultPlan plan;
    const char* spec = std::getenv("RABBIT_FAULT");
    if (!spec || !*spec) return plan;
    std::string s(spec);
    auto eq = s.find('=');
    std::string key = s.substr(0, eq);
    uint64_t bytes = eq == std::string::npos ? 0 : std::strtoull(s.c_str() + eq + 1, nullptr, 10);
    if (key == "enospc-after") plan.kind = FaultKind::enospc;
    else if (key == "kill-after") plan.kind = FaultKind::kill;
    else if (key == "sigint-after") plan.kind = FaultKind::sigint;
    else if (key == "free-bytes") plan.kind = FaultKind::free_bytes;
    plan.bytes = bytes;
    return plan;
}

const FaultPlan& fault_plan() {
    static const FaultPlan plan = parse_fault_plan();
    return plan;
}

} // namespace

uint64_t fault_free_space(uint64_t real) {
    const FaultPlan& plan = fault_plan();
    return plan.kind == FaultKind::free_bytes && plan.bytes < real ? plan.bytes : real;
}

size_t fault_allow_write(size_t n, int* err) {
    const FaultPlan& plan = fault_plan();
    static std::atomic<uint64_t> written{0};
    if (plan.kind != FaultKind::enospc && plan.kind != FaultKind::kill && plan.kind != FaultKind::sigint) return n;
    uint64_t before = written.fetch_add(n);
    if (before + n <= plan.bytes) return n;
    if (plan.kind == FaultKind::sigint) {
        // Ctrl-C arriving mid-file: the handler sets the flag, the write goes on, and the next
        // poll unwinds. Raised once.
        if (before <= plan.bytes) ::raise(SIGINT);
        return n;
    }
    if (plan.kind == FaultKind::kill) {
        // A kill -9 arriving mid-file: no destructors, no cleanup, the temporary file stays.
        ::kill(::getpid(), SIGKILL);
        ::_exit(137);
    }
    *err = ENOSPC;
    return before >= plan.bytes ? 0 : size_t(plan.bytes - before);
}

} // namespace rabbit
