"""Keeps mapping memory at known lines, for leaktrace's mapped-bytes test:
mmap objects (one mmap each) and large bytearrays (malloc maps each one
above its threshold), all kept in lists until exit."""
import mmap

kept = []
buffers = []


def grow(n):
    for _ in range(n):
        kept.append(mmap.mmap(-1, 4 << 20))  # leak: grow


def more_buffers(n):
    for _ in range(n):
        buffers.append(bytearray(4 << 20))  # leak: buffers


grow(16)
more_buffers(8)
