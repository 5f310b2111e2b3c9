"""Unusual and hostile input to a run: refused with a clear message before
anything changes, or warned about; and the quiet GPU start."""
from __future__ import annotations

import os

from sge_optimizer.addon import gpu_context


def test_gpu_start_drops_only_the_harmless_egl_lines(capfd):
    with gpu_context._harmless_lines_dropped():
        os.write(2, b"EGL Error (0x3009): EGL_BAD_MATCH: Arguments are inconsistent\n")
        os.write(2, b"a real problem\n")
    assert capfd.readouterr().err == "a real problem\n"
