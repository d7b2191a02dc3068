// SPDX-License-Identifier: Apache-2.0
// Fault injection for the tests of failure handling. The environment variable RABBIT_FAULT
// makes output writes fail part-way, the way a full disk or a killed process would:
//   RABBIT_FAULT=enospc-after=BYTES   writes fail with ENOSPC once BYTES were written
//   RABBIT_FAULT=kill-after=BYTES     the process dies by SIGKILL once BYTES were written
//   RABBIT_FAULT=sigint-after=BYTES   the process gets SIGINT (Ctrl-C) once BYTES were written
//   RABBIT_FAULT=free-bytes=BYTES     free_space() reports at most BYTES available
// BYTES counts every byte this process wrote through OutputFile. Unset, it costs one branch.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rabbit {

// Called before each write of n bytes: returns how many of them may be written (n when no
// fault is due) and sets *err to the errno to report for the rest. Does not return when the
// fault due is a kill.
size_t fault_allow_write(size_t n, int* err);

// The free space to report instead of `real`, when a free-bytes fault is armed.
uint64_t fault_free_space(uint64_t real);

} // namespace rabbit
