// SPDX-License-Identifier: Apache-2.0
#include "fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "sanitizers.h"

#ifdef CUDA_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CUDA_EMU_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if defined(__x86_64__) && !defined(CUDA_EMU_UCONTEXT)
#define CUDA_EMU_X86_SWITCH 1
#else
#include <ucontext.h>
#endif

namespace cuda_emu {

#ifdef CUDA_EMU_X86_SWITCH
// switch_stack saves the callee-saved registers, the SSE control/status and the x87 control
// word on the current stack, stores the stack pointer in *save, loads `load` and restores the
// same from there. A new fiber's stack is laid out as if it had switched away just before
// fiber_start, which calls r13(r12).
extern "C" void cuda_emu_switch_stack(void** save, void* load);
extern "C" void cuda_emu_fiber_start();
asm(R"(
    .text
    .globl cuda_emu_switch_stack
    .type cuda_emu_switch_stack, @function
cuda_emu_switch_stack:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cuda_emu_switch_stack, .-cuda_emu_switch_stack

    .globl cuda_emu_fiber_start
    .type cuda_emu_fiber_start, @function
cuda_emu_fiber_start:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size cuda_emu_fiber_start, .-cuda_emu_fiber_start
)");
#endif

namespace {

constexpr size_t k_stack_bytes = 256u << 10;

// The OS thread's side: where a yield returns to.
struct Host {
#ifdef CUDA_EMU_X86_SWITCH
    void* sp = nullptr;
#else
    ucontext_t ctx;
#endif
    const void* stack_bottom = nullptr; // for ASan: the OS thread's stack, learnt at the first switch
    size_t stack_size = 0;
    void* tsan = nullptr;
    Fiber* current = nullptr;
};
thread_local Host t_host;

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "cuda-emu: %s\n", what);
    std::abort();
}

} // namespace

struct Fiber::Impl {
    unsigned char* map = nullptr; // guard page, then the stack
    unsigned char* stack = nullptr;
    size_t stack_size = k_stack_bytes;
#ifdef CUDA_EMU_X86_SWITCH
    void* sp = nullptr;
#else
    ucontext_t ctx;
#endif
    void* tsan = nullptr;
    void (*entry)(void*) = nullptr;
    void* arg = nullptr;
    Fiber* self = nullptr;
    bool started = false, finished = false; // abandoned: started, never finished

    static void main(void* p);
};

namespace {

// Announces a switch to the sanitizers: before it (to the stack given), and after it.
inline void before_switch(void** fake, const void* bottom, size_t size, void* tsan_target) {
#ifdef CUDA_EMU_ASAN
    __sanitizer_start_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
#ifdef CUDA_EMU_TSAN
    __tsan_switch_to_fiber(tsan_target, 0); // with synchronisation: the fibers of a block take turns
#else
    (void)tsan_target;
#endif
}

inline void after_switch(void* fake, const void** from_bottom, size_t* from_size) {
#ifdef CUDA_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, from_bottom, from_size);
#else
    (void)fake, (void)from_bottom, (void)from_size;
#endif
}

#ifndef CUDA_EMU_X86_SWITCH
void ucontext_main(unsigned hi, unsigned lo) {
    auto* impl = reinterpret_cast<Fiber::Impl*>((uintptr_t(hi) << 32) | uintptr_t(lo));
    Fiber::Impl::main(impl);
}
#endif

} // namespace

void Fiber::Impl::main(void* p) {
    Impl* impl = static_cast<Impl*>(p);
    after_switch(nullptr, &t_host.stack_bottom, &t_host.stack_size);
    impl->started = true;
    impl->entry(impl->arg);
    impl->finished = true;
    Fiber::yield(true);
    die("a finished fiber was resumed");
}

Fiber::~Fiber() {
    if (!impl_) return;
#ifdef CUDA_EMU_TSAN
    if (impl_->tsan) __tsan_destroy_fiber(impl_->tsan);
#endif
#ifdef CUDA_EMU_ASAN
    // Frames that never returned left poisoned shadow behind; the next mapping at these
    // addresses (a model file, say) must not inherit it.
    if (impl_->stack) ASAN_UNPOISON_MEMORY_REGION(impl_->stack, impl_->stack_size);
#endif
    if (impl_->map) munmap(impl_->map, impl_->stack_size + size_t(getpagesize()));
    delete impl_;
}

void Fiber::prepare(void (*entry)(void*), void* arg) {
    if (!impl_) {
        impl_ = new Impl;
        impl_->self = this;
        const size_t page = size_t(getpagesize());
        void* m = mmap(nullptr, impl_->stack_size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (m == MAP_FAILED) die("cannot map a fiber stack");
        impl_->map = static_cast<unsigned char*>(m);
        if (mprotect(impl_->map, page, PROT_NONE) != 0) die("cannot protect a fiber's guard page");
        impl_->stack = impl_->map + page;
#ifdef CUDA_EMU_TSAN
        impl_->tsan = __tsan_create_fiber(0);
#endif
    }
#ifdef CUDA_EMU_ASAN
    // Frames of an earlier thread on this stack may have left poisoned redzones behind: the
    // few that never return (the switch out of a finished fiber, near the top), or all of an
    // abandoned one's.
    if (impl_->started && !impl_->finished) {
        ASAN_UNPOISON_MEMORY_REGION(impl_->stack, impl_->stack_size);
    } else {
        const size_t top = std::min<size_t>(impl_->stack_size, 32u << 10);
        ASAN_UNPOISON_MEMORY_REGION(impl_->stack + impl_->stack_size - top, top);
    }
#endif
    impl_->started = false;
    impl_->finished = false;
    impl_->entry = entry;
    impl_->arg = arg;
#ifdef CUDA_EMU_X86_SWITCH
    // Top of the stack, 16-byte aligned: [mxcsr | fpu cw][r15 r14 r13 r12 rbx rbp][return].
    auto* top = reinterpret_cast<uint64_t*>((uintptr_t(impl_->stack + impl_->stack_size) - 128) & ~uintptr_t(15));
    uint64_t* frame = top - 8;
    const uint32_t mxcsr = 0x1f80;
    const uint16_t fpucw = 0x037f;
    std::memset(frame, 0, 8 * sizeof(uint64_t));
    std::memcpy(reinterpret_cast<unsigned char*>(frame), &mxcsr, 4);
    std::memcpy(reinterpret_cast<unsigned char*>(frame) + 4, &fpucw, 2);
    frame[3] = uint64_t(uintptr_t(&Impl::main)); // r13
    frame[4] = uint64_t(uintptr_t(impl_));       // r12
    frame[7] = uint64_t(uintptr_t(&cuda_emu_fiber_start));
    impl_->sp = frame;
#else
    if (getcontext(&impl_->ctx) != 0) die("getcontext failed");
    impl_->ctx.uc_stack.ss_sp = impl_->stack;
    impl_->ctx.uc_stack.ss_size = impl_->stack_size;
    impl_->ctx.uc_link = nullptr;
    const uintptr_t p = uintptr_t(impl_);
    makecontext(&impl_->ctx, reinterpret_cast<void (*)()>(&ucontext_main), 2, unsigned(p >> 32), unsigned(p & 0xffffffffu));
#endif
}

void Fiber::resume() {
    if (t_host.current) die("a fiber resumed another fiber");
#ifdef CUDA_EMU_TSAN
    if (!t_host.tsan) t_host.tsan = __tsan_get_current_fiber();
#endif
    t_host.current = this;
    void* fake = nullptr;
    before_switch(&fake, impl_->stack, impl_->stack_size, impl_->tsan);
#ifdef CUDA_EMU_X86_SWITCH
    cuda_emu_switch_stack(&t_host.sp, impl_->sp);
#else
    if (swapcontext(&t_host.ctx, &impl_->ctx) != 0) die("swapcontext failed");
#endif
    after_switch(fake, nullptr, nullptr);
    t_host.current = nullptr;
}

void Fiber::yield(bool finished) {
    Fiber* f = t_host.current;
    if (!f) die("yield outside a fiber");
    Impl* impl = f->impl_;
    void* fake = nullptr;
    before_switch(finished ? nullptr : &fake, t_host.stack_bottom, t_host.stack_size, t_host.tsan);
#ifdef CUDA_EMU_X86_SWITCH
    cuda_emu_switch_stack(&impl->sp, t_host.sp);
#else
    if (swapcontext(&impl->ctx, &t_host.ctx) != 0) die("swapcontext failed");
#endif
    after_switch(fake, &t_host.stack_bottom, &t_host.stack_size);
}

} // namespace cuda_emu
