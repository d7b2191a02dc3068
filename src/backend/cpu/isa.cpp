// SPDX-License-Identifier: Apache-2.0
// Which instructions the CPU kernels use: chosen once, at the first call, for the whole run.
#include "backend/cpu/kernels.h"
#include "backend/cpu/simd.h"

#include <algorithm>
#ifdef RABBIT_X86
#include <cpuid.h>
#endif
#include <cstdlib>
#include <string>

namespace rabbit {

namespace {

#ifdef RABBIT_X86
enum class Reg { eax, ebx, ecx, edx };

// Bit `bit` of register `reg` of CPUID leaf `leaf`, subleaf `sub` (false where the leaf is
// beyond the processor's maximum).
bool cpuid_bit(unsigned leaf, unsigned sub, Reg reg, int bit) {
    unsigned r[4] = {};
    if (!__get_cpuid_count(leaf, sub, &r[0], &r[1], &r[2], &r[3])) return false;
    return (r[int(reg)] >> bit) & 1u;
}
#endif

// The best level the processor and the operating system support.
Isa detect_isa() {
    Isa best = Isa::portable;
#ifdef RABBIT_X86
    // A feature counts only if the operating system also saves its registers on a context
    // switch (XGETBV: the YMM state for AVX2, FMA and F16C; the opmask and ZMM states for
    // the AVX-512 ones). __builtin_cpu_supports makes that check itself (GCC 12's libgcc and
    // clang's compiler-rt both read XGETBV after OSXSAVE), so no XGETBV here. F16C and
    // AVX512_BF16 come from CPUID directly: clang 14 (the fuzz build) knows neither name. Their
    // register state is AVX2's and AVX-512F's, which the checks before them have seen enabled.
    __builtin_cpu_init(); // needed only before constructors run; harmless after
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpuid_bit(1, 0, Reg::ecx, 29)) // F16C
        best = Isa::avx2;
    if (best == Isa::avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        best = Isa::avx512;
    if (best == Isa::avx512 && cpuid_bit(7, 1, Reg::eax, 5)) best = Isa::avx512bf16; // AVX512_BF16
#endif
    // RABBIT_ISA=portable|avx2|avx512 caps it (the tests run every level the machine has).
    if (const char* cap = std::getenv("RABBIT_ISA"); cap && *cap) {
        const std::string c = cap;
        const Isa limit = c == "portable" ? Isa::portable : c == "avx2" ? Isa::avx2 : c == "avx512" ? Isa::avx512 : best;
        best = std::min(best, limit);
    }
    return best;
}

} // namespace

Isa cpu_isa() {
    // A function-local static, so that it is set before any use, even from another file's
    // static initializer.
    static const Isa isa = detect_isa();
    return isa;
}

bool cpu_vnni() {
#ifdef RABBIT_X86
    static const bool vnni = cpu_isa() >= Isa::avx512 && cpuid_bit(7, 0, Reg::ecx, 11); // AVX512_VNNI
    return vnni;
#else
    return false;
#endif
}

const char* isa_name(Isa isa) {
    switch (isa) {
    case Isa::portable: return "portable";
    case Isa::avx2: return "AVX2";
    case Isa::avx512: return "AVX-512";
    case Isa::avx512bf16: return "AVX-512 BF16";
    }
    return "?";
}

} // namespace rabbit
