"""Textures of the PyOpenGL backend: creation, upload, clear and read-back.

Conventions kept from Blender: float formats take data, integer ones start
at 0; samplers filter NEAREST (the kernels use `texelFetch`); arrays are
(height, width, channels) float32 with row 0 at the bottom.
"""
from __future__ import annotations

import weakref

import numpy as np

_CHANNELS = {"R32F": 1, "RG32F": 2, "RGBA32F": 4, "R32I": 1, "RGBA32I": 4,
             "DEPTH_COMPONENT32F": 1}


class _Texture:
    __slots__ = ("id", "width", "height", "format", "__weakref__")

    def __init__(self, tex_id, width, height, fmt):
        self.id, self.width, self.height, self.format = tex_id, width, height, fmt

    def __repr__(self):
        return f"<GL texture {self.id} {self.format} {self.width}x{self.height}>"


class Textures:
    """The textures of one context (`gl_context.EglContext`)."""

    def __init__(self, GL, context):
        self.GL, self._context = GL, context
        self._table = {
            "R32F": (GL.GL_R32F, GL.GL_RED, GL.GL_FLOAT),
            "RG32F": (GL.GL_RG32F, GL.GL_RG, GL.GL_FLOAT),
            "RGBA32F": (GL.GL_RGBA32F, GL.GL_RGBA, GL.GL_FLOAT),
            "R32I": (GL.GL_R32I, GL.GL_RED_INTEGER, GL.GL_INT),
            "RGBA32I": (GL.GL_RGBA32I, GL.GL_RGBA_INTEGER, GL.GL_INT),
            "DEPTH_COMPONENT32F": (GL.GL_DEPTH_COMPONENT32F, GL.GL_DEPTH_COMPONENT, GL.GL_FLOAT),
        }

    def formats(self, fmt):
        """(internal format, layout, type) of a texture format name."""
        return self._table[fmt]

    def new(self, width, height, fmt):
        """An uninitialised texture; the caller makes the context current."""
        GL = self.GL
        internal, _, _ = self.formats(fmt)
        tex_id = int(GL.glGenTextures(1))
        GL.glBindTexture(GL.GL_TEXTURE_2D, tex_id)
        GL.glTexStorage2D(GL.GL_TEXTURE_2D, 1, internal, width, height)
        for param in (GL.GL_TEXTURE_MIN_FILTER, GL.GL_TEXTURE_MAG_FILTER):
            GL.glTexParameteri(GL.GL_TEXTURE_2D, param, GL.GL_NEAREST)
        for param in (GL.GL_TEXTURE_WRAP_S, GL.GL_TEXTURE_WRAP_T):
            GL.glTexParameteri(GL.GL_TEXTURE_2D, param, GL.GL_CLAMP_TO_EDGE)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        tex = _Texture(tex_id, width, height, fmt)
        weakref.finalize(tex, self._context.garbage.append, ("texture", tex_id)).atexit = False
        return tex

    def texture(self, width, height, fmt, data=None):
        if fmt not in _CHANNELS:
            raise ValueError(f"unsupported texture format {fmt}")
        if data is not None and fmt.endswith("I"):
            raise ValueError("integer textures cannot be uploaded; they start at 0")
        if data is not None:
            flat = np.ascontiguousarray(data, dtype=np.float32).reshape(-1)
            expected = width * height * _CHANNELS[fmt]
            if flat.size != expected:
                raise ValueError(f"texture data has {flat.size} values, {fmt} {width}x{height} needs {expected}")
        with self._context.current():
            tex = self.new(width, height, fmt)
            if data is None:
                self.clear(tex, 0)
            else:
                GL = self.GL
                _, layout, kind = self.formats(fmt)
                GL.glBindTexture(GL.GL_TEXTURE_2D, tex.id)
                GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, 0, width, height, layout, kind, flat)
                GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        return tex

    def clear(self, texture, value=0):
        GL = self.GL
        _, layout, kind = self.formats(texture.format)
        channels = _CHANNELS[texture.format]
        if texture.format.endswith("I"):
            data = np.full(channels, int(value), np.int32)
        else:
            data = np.full(channels, float(value), np.float32)
        with self._context.current():
            GL.glClearTexImage(texture.id, 0, layout, kind, data)
            GL.glMemoryBarrier(GL.GL_ALL_BARRIER_BITS)

    def read(self, texture):
        GL = self.GL
        _, layout, kind = self.formats(texture.format)
        channels = _CHANNELS[texture.format]
        integer = texture.format.endswith("I")
        out = np.empty((texture.height, texture.width, channels), np.int32 if integer else np.float32)
        with self._context.current():
            GL.glMemoryBarrier(GL.GL_ALL_BARRIER_BITS)
            GL.glBindTexture(GL.GL_TEXTURE_2D, texture.id)
            GL.glGetTexImage(GL.GL_TEXTURE_2D, 0, layout, kind, out)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        return out.astype(np.float32) if integer else out
