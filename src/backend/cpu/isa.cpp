// SPDX-License-Identifier: Apache-2.0
// Which instructions the CPU kernels use: chosen once, at the first call, for the whole run.
#include "backend/cpu/kernels.h"
#include "backend/cpu/simd.h"

#include <algorithm>
#include <cstdlib>
#include <string>

namespace rabbit {

namespace {

// The best level the processor and the operating system support.
Isa detect_isa() {
    Isa best = Isa::portable;
#ifdef RABBIT_X86
    // A feature counts only if the operating system also saves its registers on a context
    // switch (XGETBV: the YMM state for AVX2, FMA and F16C; the opmask and ZMM states for
    // the AVX-512 ones). libgcc's __builtin_cpu_supports makes that check itself: after
    // OSXSAVE it reads XGETBV and reports AVX2/FMA/F16C only with the YMM state enabled,
    // AVX512F/BW/VL and AVX512_BF16 only with the opmask and ZMM states too (GCC 12's
    // get_available_features, common/config/i386/cpuinfo.h), so no CPUID or XGETBV here.
    __builtin_cpu_init(); // needed only before constructors run; harmless after
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        best = Isa::avx2;
    if (best == Isa::avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        best = Isa::avx512;
    if (best == Isa::avx512 && __builtin_cpu_supports("avx512bf16")) best = Isa::avx512bf16;
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
