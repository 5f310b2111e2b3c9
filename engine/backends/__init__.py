"""Backends of the engine that live outside Blender.

`pyopengl.PyOpenGLBackend` runs the same `gpu_kernels` specs on a headless
OpenGL 4.5 context (EGL, surfaceless) through PyOpenGL, with no `bpy`.
PyOpenGL is an optional dependency for tools and tests only: importing this
package never imports it; `PyOpenGLBackend()` does, and raises a clear error
when it is missing. (The Blender backend is `addon/gpu_backend.py`.)
"""
from __future__ import annotations


def __getattr__(name):
    if name in ("PyOpenGLBackend", "glsl_declarations", "glsl_source"):
        from . import pyopengl

        return getattr(pyopengl, name)
    raise AttributeError(name)


__all__ = ["PyOpenGLBackend", "glsl_declarations", "glsl_source"]
