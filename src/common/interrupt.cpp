// SPDX-License-Identifier: Apache-2.0
#include "common/interrupt.h"

#include "common/error.h"

#include <csignal>

namespace rabbit {

namespace {
// The one process-wide flag: a signal handler can touch nothing else.
volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_interrupt(int) { g_interrupted = 1; }
} // namespace

void install_interrupt_handlers() {
    struct sigaction sa = {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

void throw_if_interrupted() {
    if (g_interrupted) throw Error(ExitCode::interrupted, "interrupted");
}

bool interrupted() { return g_interrupted != 0; }

void clear_interrupt() { g_interrupted = 0; }

} // namespace rabbit
