"""Pinning malloc: with the thresholds pinned, freeing a block no longer moves them (known answer from glibc's
own statistics, `mallinfo2().hblks`, the number of blocks mapped with mmap), in a fresh process each time
because a pin lasts for the rest of the process."""
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc thresholds are glibc's")

SCRIPT = """
import ctypes, sys
from analysis.cost.allocator import malloc_pinned, pin_malloc

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype, libc.malloc.restype = MallInfo2, ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
assert malloc_pinned() is None
setting = {"mmap_threshold": 1 << 20, "trim_threshold": 1 << 30, "mmap_max": 65536 if sys.argv[1] == "pin" else 0}
if sys.argv[1] != "default":
    assert pin_malloc(**setting) == malloc_pinned() == setting
mapped = []
for _ in range(2):   # an 8 MiB block, freed, then another
    before = libc.mallinfo2().hblks
    p = libc.malloc(8 << 20)
    mapped.append(libc.mallinfo2().hblks - before)
    libc.free(p)
small = libc.malloc(512 << 10)   # under the pinned 1 MiB threshold: from the heap
mapped.append(libc.mallinfo2().hblks - before)
print(*mapped)
"""


def mmapped(mode: str) -> list:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return [int(v) for v in out.stdout.split()]


def test_a_freed_block_raises_the_default_threshold_but_not_a_pinned_one():
    assert mmapped("default") == [1, 0, 0]   # glibc raised its threshold to 8 MiB when the first block was freed
    assert mmapped("pin") == [1, 1, 0]       # pinned at 1 MiB: every 8 MiB block is mapped afresh


def test_with_mapping_off_every_block_comes_from_the_heap():
    assert mmapped("heap") == [0, 0, 0]      # mmap_max 0: not even a block above the threshold is mapped

