"""Tests run the real Blender (`bpy` wheel) and the real GLSL kernels.

The repository is imported as the package `sge_optimizer`, as Blender
imports the installed extension.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))  # _bootstrap; demo.py
import _bootstrap  # noqa: E402

_bootstrap.load_package()

import bpy  # noqa: E402

from sge_optimizer.addon.gpu_backend import BlenderGPUBackend  # noqa: E402
from sge_optimizer.addon.gpu_context import ensure_gpu  # noqa: E402


@pytest.fixture(scope="session")
def backend():
    ensure_gpu()
    return BlenderGPUBackend()


@pytest.fixture
def empty_scene():
    """A fresh, empty Blender file for each test that touches bpy data."""
    bpy.ops.wm.read_homefile(use_empty=True, app_template="")
    yield bpy.context.scene
    bpy.ops.wm.read_homefile(use_empty=True, app_template="")


