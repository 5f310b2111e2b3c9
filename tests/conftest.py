"""Tests run the real Blender (`bpy` wheel) and the real GLSL kernels.

The repository is imported as the package `sge_optimizer`, as Blender
imports the installed extension.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(1, str(ROOT / "lab"))  # the evaluation cases (lab/cases.py), until they move
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


