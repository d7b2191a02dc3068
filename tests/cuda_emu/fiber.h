// SPDX-License-Identifier: Apache-2.0
// Fibers for the emulated CUDA threads: one stack each, switched by hand on the OS thread that
// runs a block (a few instructions on x86-64; ucontext elsewhere), with the switches announced
// to AddressSanitizer and ThreadSanitizer, which would otherwise take a fiber's stack for a
// corrupted one. A fiber never moves to another OS thread.
#pragma once

#include <cstddef>

namespace cuda_emu {

class Fiber {
public:
    Fiber() = default;
    ~Fiber();
    Fiber(const Fiber&) = delete;
    Fiber& operator=(const Fiber&) = delete;

    // Makes the fiber start entry(arg) at its next resume(); its stack is reused.
    void prepare(void (*entry)(void*), void* arg);
    // From the OS thread's own context: runs the fiber until it yields or ends.
    void resume();

    // From inside the running fiber: back to the context that resumed it. finished: it will
    // never be resumed again (until prepared anew).
    static void yield(bool finished = false);

private:
    struct Impl;
    Impl* impl_ = nullptr;
};

} // namespace cuda_emu
