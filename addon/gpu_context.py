"""Make Blender's `gpu` module usable: in the UI, under --background, and in
the `bpy` Python module."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile

import bpy
import gpu

# Mesa's EGL reports this while Blender probes for a headless context; it is
# harmless (Blender goes on with another configuration) and alarms users.
_HARMLESS_STDERR = (b"EGL_BAD_MATCH",)


class GPUUnavailableError(RuntimeError):
    pass


def _gpu_ready() -> bool:
    try:
        gpu.platform.renderer_get()
        gpu.state.viewport_get()
        return True
    except SystemError:
        return False


def _render_throwaway_frame() -> None:
    """Blender < 5.2: one tiny Workbench frame in a throw-away scene creates the
    GPU context; the user's scene and data are left exactly as they were."""
    images_before = set(bpy.data.images)
    scene = bpy.data.scenes.new("__sge_gpu_init__")
    cam_data = bpy.data.cameras.new("__sge_gpu_init__")
    cam = bpy.data.objects.new("__sge_gpu_init__", cam_data)
    try:
        scene.collection.objects.link(cam)
        scene.camera = cam
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.render.resolution_x = scene.render.resolution_y = 4
        scene.render.resolution_percentage = 100
        bpy.ops.render.render(scene=scene.name)
    finally:
        bpy.data.objects.remove(cam)
        bpy.data.cameras.remove(cam_data)
        bpy.data.scenes.remove(scene)
        for image in set(bpy.data.images) - images_before:  # the new "Render Result"
            bpy.data.images.remove(image)


@contextlib.contextmanager
def _harmless_lines_dropped():
    """Blender prints from C straight to file descriptor 2, so capture that
    around the context creation and pass on every line but the harmless ones."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no usable fd 2 (a GUI process on Windows)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True)
                    if not any(word in line for word in _HARMLESS_STDERR)]
            if kept:
                os.write(2, b"".join(kept))


def ensure_gpu() -> None:
    """Raise GPUUnavailableError with the reason if no GPU context can be had."""
    if _gpu_ready():
        return
    errors = []
    with _harmless_lines_dropped():
        if hasattr(gpu, "init"):
            try:
                gpu.init()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(f"gpu.init() failed: {exc}")
        if not _gpu_ready():
            try:
                _render_throwaway_frame()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(f"a Workbench render to create the context failed: {exc}")
    if not _gpu_ready():
        detail = "; ".join(errors) or "the gpu module still reports no context"
        raise GPUUnavailableError(
            "SGE Optimizer needs a GPU context (OpenGL 4.3+, Vulkan or Metal, or Mesa llvmpipe) "
            f"and none could be created: {detail}")
