#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Evicts files from the page cache (posix_fadvise DONTNEED), so that the next read comes from
the disk. Needs no privileges, unlike /proc/sys/vm/drop_caches. Usage: drop_cache.py PATH..."""
import os
import sys


def drop(path):
    if os.path.isdir(path):
        for entry in os.scandir(path):
            drop(entry.path)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd) if os.access(path, os.W_OK) else None
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


for p in sys.argv[1:]:
    drop(p)
