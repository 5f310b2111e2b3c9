"""How much memory a run needs, and how much the machine has, so that a run
that cannot fit is refused before it starts instead of failing midway."""
from __future__ import annotations

import ctypes
import os
import sys

FRAME_BYTES = 16  # one RGBA32F pixel
# Measured on llvmpipe (GPU memory is host memory there), in RGBA32F frames of
# the working resolution: each view's target is kept on the host and on the
# GPU, with the running mean of its renders (Settings.running_residual); the
# render targets, read-backs and resampling temporaries add ~16 more.
FRAMES_PER_VIEW = 3
FRAMES_FIXED = 16
BYTES_PER_TEXEL = 160  # host copies (read, original, clipped, upload) + theta, Adam moments, gradients
BYTES_PER_VERTEX = 320  # the same for positions, plus the Laplacian's adjacency
SOURCE_FRAMES = 2  # a target image is read whole (RGBA32F) and box-filtered, one at a time


def _bytes_per_pixel(views: int) -> int:
    return FRAME_BYTES * (FRAMES_PER_VIEW * views + FRAMES_FIXED)


def _fixed_bytes(texels: int, vertices: int, source_pixels: int) -> int:
    return texels * BYTES_PER_TEXEL + vertices * BYTES_PER_VERTEX + source_pixels * FRAME_BYTES * SOURCE_FRAMES


def run_bytes(width: int, height: int, views: int, texels: int, vertices: int, source_pixels: int = 0) -> int:
    """Estimated peak bytes of a run, host and GPU together; `source_pixels`:
    the largest target image's pixels before resampling."""
    return width * height * _bytes_per_pixel(views) + _fixed_bytes(texels, vertices, source_pixels)


def largest_side(longest_side: int, width: int, height: int, views: int, texels: int, vertices: int,
                 source_pixels: int, budget: int) -> int:
    """The longest working side (`longest_side` scaled) whose run fits in `budget` bytes; 0: none."""
    pixels = max(budget - _fixed_bytes(texels, vertices, source_pixels), 0) / _bytes_per_pixel(views)
    return int(longest_side * (pixels / (width * height)) ** 0.5)


def available_bytes() -> int | None:
    """Memory a new allocation can get now without swapping, or None if unknown."""
    try:
        with open("/proc/meminfo") as f:  # Linux: MemAvailable counts reclaimable caches
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if sys.platform == "win32":
        class MemoryStatus(ctypes.Structure):
            _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong),
                        ("total_phys", ctypes.c_ulonglong), ("avail_phys", ctypes.c_ulonglong),
                        ("total_page", ctypes.c_ulonglong), ("avail_page", ctypes.c_ulonglong),
                        ("total_virtual", ctypes.c_ulonglong), ("avail_virtual", ctypes.c_ulonglong),
                        ("avail_extended", ctypes.c_ulonglong)]

        status = MemoryStatus(length=ctypes.sizeof(MemoryStatus))
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
            return int(status.avail_phys)
        return None
    try:  # macOS and other Unixes: physical memory (free pages undercount: caches)
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
