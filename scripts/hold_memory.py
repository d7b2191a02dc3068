#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Holds GIB gibibytes of anonymous memory until killed, so that the page cache has that much
less room: a model larger than what is left is read from the disk at every pass, as on a
machine whose RAM is smaller than the model. For benchmarks only; docs/BENCHMARKS.md says
where it was used. Usage: hold_memory.py GIB (then kill it, or Ctrl-C)."""
import ctypes
import mmap
import signal
import sys
import time

MCL_CURRENT = 1


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: hold_memory.py GIB")
    size = int(float(sys.argv[1]) * (1 << 30))
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    # Touch every page: without swap, anonymous pages cannot be evicted, so the kernel must
    # shrink the page cache instead. mlock makes that hold even where swap exists.
    page = mmap.PAGESIZE
    for off in range(0, size, page):
        buf[off] = 1
    locked = ctypes.CDLL(None, use_errno=True).mlockall(MCL_CURRENT) == 0
    print(f"holding {size / (1 << 30):.1f} GiB ({'locked' if locked else 'not locked: swap could take it'})",
          flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
