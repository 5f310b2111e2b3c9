"""Rasterization on the PyOpenGL backend: vertex batches, render targets
(framebuffers) and draws.

Every draw clears its target, runs with a depth test and is followed by
`glMemoryBarrier(ALL)`, so the next pass sees its writes.
"""
from __future__ import annotations

import ctypes
import weakref

import numpy as np


class _Batch:
    def __init__(self, vao, buffers, count):
        self.vao, self.buffers, self.count = vao, buffers, count


class _RenderTarget:
    def __init__(self, GL, textures, garbage, width, height, pair=False):
        self.size = (width, height)
        self.color = textures.new(width, height, "RGBA32F")
        self.id = textures.new(width, height, "R32I")
        self.uv = textures.new(width, height, "RGBA32F")
        # A pair target (RASTERIZE_PAIR) also holds R-'s colour.
        self.color_minus = textures.new(width, height, "RGBA32F") if pair else None
        self.depth = textures.new(width, height, "DEPTH_COMPONENT32F")
        self.attachments = (self.color, self.id, self.uv) + ((self.color_minus,) if pair else ())
        self.framebuffer = int(GL.glGenFramebuffers(1))
        weakref.finalize(self, garbage.append, ("framebuffer", self.framebuffer)).atexit = False
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.framebuffer)
        for i, tex in enumerate(self.attachments):
            GL.glFramebufferTexture2D(GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0 + i,
                                      GL.GL_TEXTURE_2D, tex.id, 0)
        GL.glFramebufferTexture2D(GL.GL_FRAMEBUFFER, GL.GL_DEPTH_ATTACHMENT,
                                  GL.GL_TEXTURE_2D, self.depth.id, 0)
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            raise RuntimeError(f"incomplete framebuffer: 0x{int(status):x}")


class Raster:
    """Batches, render targets and draws of one context."""

    def __init__(self, GL, context, textures, programs, timer):
        self.GL, self._context = GL, context
        self._textures, self._programs, self._timer = textures, programs, timer

    def mesh_batch(self, vertex_index, corner_uv):
        """Locations 0 (vertex_index) and 1 (corner_uv), as the raster specs declare them."""
        GL = self.GL
        index = np.ascontiguousarray(vertex_index, np.int32).reshape(-1)
        floats = [(1, 2, np.ascontiguousarray(corner_uv, np.float32).reshape(-1, 2))]
        if any(len(values) != len(index) for _, _, values in floats):
            raise ValueError("vertex_index and the corner attributes must have one row per corner")
        with self._context.current():
            vao = int(GL.glGenVertexArrays(1))
            buffers = [int(b) for b in np.atleast_1d(GL.glGenBuffers(1 + len(floats)))]
            GL.glBindVertexArray(vao)
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, buffers[0])
            GL.glBufferData(GL.GL_ARRAY_BUFFER, index.nbytes, index, GL.GL_STATIC_DRAW)
            GL.glVertexAttribIPointer(0, 1, GL.GL_INT, 0, ctypes.c_void_p(0))
            GL.glEnableVertexAttribArray(0)
            for buffer, (location, width, values) in zip(buffers[1:], floats):
                GL.glBindBuffer(GL.GL_ARRAY_BUFFER, buffer)
                GL.glBufferData(GL.GL_ARRAY_BUFFER, values.nbytes, values, GL.GL_STATIC_DRAW)
                GL.glVertexAttribPointer(location, width, GL.GL_FLOAT, GL.GL_FALSE, 0, ctypes.c_void_p(0))
                GL.glEnableVertexAttribArray(location)
            GL.glBindVertexArray(0)
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
        batch = _Batch(vao, buffers, len(index))
        weakref.finalize(batch, self._context.garbage.append, ("batch", (vao, buffers))).atexit = False
        return batch

    def render_target(self, width, height, pair=False):
        with self._context.current():
            return _RenderTarget(self.GL, self._textures, self._context.garbage, width, height, pair)

    def target_textures(self, target):
        out = {"color": target.color, "id": target.id, "uv": target.uv}
        if target.color_minus is not None:
            out["color_minus"] = target.color_minus
        return out

    def draw(self, spec, target, batch, samplers, constants):
        GL = self.GL
        width, height = target.size
        with self._context.current():
            program, locations = self._programs.shader(spec)
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, target.framebuffer)
            n = len(target.attachments)
            GL.glDrawBuffers(n, [GL.GL_COLOR_ATTACHMENT0 + i for i in range(n)])
            GL.glViewport(0, 0, width, height)
            GL.glDisable(GL.GL_BLEND)
            GL.glDisable(GL.GL_CULL_FACE)
            GL.glDisable(GL.GL_SCISSOR_TEST)
            GL.glEnable(GL.GL_DEPTH_TEST)
            GL.glDepthFunc(GL.GL_LESS)
            GL.glDepthMask(GL.GL_TRUE)
            GL.glColorMask(GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE)
            with self._timer.auto(spec.name):
                GL.glClearBufferfv(GL.GL_COLOR, 0, np.zeros(4, np.float32))
                GL.glClearBufferiv(GL.GL_COLOR, 1, np.zeros(4, np.int32))
                GL.glClearBufferfv(GL.GL_COLOR, 2, np.zeros(4, np.float32))
                if target.color_minus is not None:
                    GL.glClearBufferfv(GL.GL_COLOR, 3, np.zeros(4, np.float32))
                GL.glClearBufferfv(GL.GL_DEPTH, 0, np.ones(1, np.float32))
                GL.glUseProgram(program)
                self._programs.set_constants(spec, program, locations, constants)
                self._programs.bind_samplers(spec, samplers)
                GL.glBindVertexArray(batch.vao)
                GL.glDrawArrays(GL.GL_TRIANGLES, 0, batch.count)
                GL.glBindVertexArray(0)
                GL.glMemoryBarrier(GL.GL_ALL_BARRIER_BITS)
            GL.glUseProgram(0)
            GL.glDisable(GL.GL_DEPTH_TEST)
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
