// SPDX-License-Identifier: Apache-2.0
// Whether this build runs under AddressSanitizer or ThreadSanitizer (GCC and Clang spell it
// differently), for the parts of the emulator that must tell them about fibers and memory.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define CUDA_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUDA_EMU_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define CUDA_EMU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CUDA_EMU_TSAN 1
#endif
#endif
