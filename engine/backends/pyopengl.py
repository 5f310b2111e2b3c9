"""The engine's backend on plain OpenGL 4.5 through PyOpenGL, without Blender.

A headless context, OpenGL 4.5 core (4.3 is enough: compute shaders, image
load/store), made current with no surface. `platform="auto"` (default) uses
a hardware EGL device (EGL_EXT_platform_device) if one is enumerated, else
Mesa's surfaceless platform (EGL_PLATFORM_SURFACELESS_MESA: llvmpipe on a
machine without a GPU); "surfaceless" and "device" force one (a forced
"device" accepts Mesa's software device too). `backend.platform` says which
was used. Only Mesa llvmpipe has been tested (both platforms).
The kernels are the `gpu_kernels` specs, compiled from the same GLSL bodies
as in Blender; only the declarations that Blender's `GPUShaderCreateInfo`
would generate are generated here (`glsl_declarations`). It never imports
`bpy`. PyOpenGL is an optional dependency (tools, tests): it is imported when
a `PyOpenGLBackend` is created, and a missing PyOpenGL raises ImportError
with the pip line. `PYOPENGL_PLATFORM=egl` is set here if unset; it must be
set before anything imports `OpenGL` in the process.

Same interface as `addon.gpu_backend.BlenderGPUBackend` (see
`engine/backend.py`), plus `read_fixed`. Conventions kept from Blender:
image units and texture units are separate namespaces (`Image.slot` is the
image unit, `Sampler.slot` the texture unit); push constants are plain
uniforms; integer textures start at 0; samplers filter NEAREST (the kernels
use `texelFetch`). Every dispatch ends with `glMemoryBarrier(ALL)`, and
every draw is followed by one too, so each pass sees the previous one's writes.

Sharing a process with Blender (whose gpu module also uses EGL): each public
method makes this backend's context current and restores the previously
current context (Blender's) on return, so neither breaks the other.

GPU timings, for benchmarks::

    backend = PyOpenGLBackend(timing=True)  # or backend.timing = True
    ...                                     # every dispatch/draw is timed under spec.name
    with backend.timer("step"):             # any span, may nest with the above
        engine.step()
    backend.gpu_timings                     # {"perturb": [s, ...], "step": [s, ...], ...}
    backend.reset_timings()

Timings use `GL_TIMESTAMP` queries (`glQueryCounter` before and after), which
unlike `GL_TIME_ELAPSED` may nest; they are resolved lazily (on reading
`gpu_timings` or on `finish()`), so timing does not stall the pipeline.
`timer()` works whether or not `timing` is on; `begin_timer(name)` /
`end_timer()` are the same without `with`.
"""
from __future__ import annotations

import ctypes
import weakref

import numpy as np

from ... import gpu_kernels as K
from .gl_context import EglContext, load_gl
from .gl_programs import Programs
from .gl_shaders import GLSL_VERSION, glsl_declarations, glsl_source  # noqa: F401 (re-exported)
from .gl_textures import Textures
from .gl_timing import GpuTimer

class _Batch:
    def __init__(self, vao, buffers, count):
        self.vao, self.buffers, self.count = vao, buffers, count


class _RenderTarget:
    def __init__(self, backend, width, height, pair=False):
        GL = backend.GL
        self.size = (width, height)
        self.color = backend._textures.new(width, height, "RGBA32F")
        self.id = backend._textures.new(width, height, "R32I")
        self.uv = backend._textures.new(width, height, "RGBA32F")
        # A pair target (RASTERIZE_PAIR) also holds R-'s colour.
        self.color_minus = backend._textures.new(width, height, "RGBA32F") if pair else None
        self.depth = backend._textures.new(width, height, "DEPTH_COMPONENT32F")
        self.attachments = (self.color, self.id, self.uv) + ((self.color_minus,) if pair else ())
        self.framebuffer = int(GL.glGenFramebuffers(1))
        weakref.finalize(self, backend._gl_context.garbage.append, ("framebuffer", self.framebuffer)).atexit = False
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


class PyOpenGLBackend:
    name = "pyopengl"

    def __init__(self, timing: bool = False, platform: str = "auto"):
        self.GL, self.EGL = load_gl()
        self._gl_context = EglContext(self.GL, self.EGL, platform)
        self.platform = self._gl_context.platform
        self._timer = GpuTimer(self.GL, self._gl_context, timing)
        self._textures = Textures(self.GL, self._gl_context)
        self._programs = Programs(self.GL, self._gl_context, self._textures, self._timer)
        with self._current():
            GL = self.GL
            self.version = GL.glGetString(GL.GL_VERSION).decode()
            self.renderer = GL.glGetString(GL.GL_RENDERER).decode()
            GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
            GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)

    def _current(self):
        """Make this backend's context current; restore the previous one after."""
        return self._gl_context.current()

    # Textures (gl_textures.Textures) -------------------------------------------
    def texture(self, width, height, fmt, data=None):
        return self._textures.texture(width, height, fmt, data)

    def clear(self, texture, value=0):
        self._textures.clear(texture, value)

    def read(self, texture):
        return self._textures.read(texture)

    def read_fixed(self, texture, rows, fixed=True, row0=0):
        """Read `rows` rows of an R32I accumulator as floats, through the
        FIXED_TO_FLOAT kernel as the Blender backend does.

        fixed=True: 64-bit fixed-point pairs (hi `rows` rows above lo);
        `row0`: the first row read (a block of a taller accumulator).
        """
        with self._current():
            out = self._textures.new(texture.width, rows, "R32F")
            self.dispatch(K.FIXED_TO_FLOAT, K.FIXED_TO_FLOAT.groups(texture.width, rows),
                          images={"accumulator": texture, "result": out}, samplers={},
                          constants={"hi_offset": rows if fixed else 0, "row0": row0})
            return self.read(out)

    # Kernels (gl_programs.Programs) --------------------------------------------
    def shader(self, spec):
        return self._programs.shader(spec)

    def dispatch(self, spec, groups, images, samplers, constants):
        self._programs.dispatch(spec, groups, images, samplers, constants)

    # Raster -------------------------------------------------------------------
    def mesh_batch(self, vertex_index, corner_uv, corner_normal=None, corner_tangent=None):
        """Locations 0 (vertex_index), 1 (corner_uv) and, for a lit fit, 2
        (corner_normal) and 3 (corner_tangent), as the raster specs declare them."""
        GL = self.GL
        index = np.ascontiguousarray(vertex_index, np.int32).reshape(-1)
        floats = [(1, 2, corner_uv), (2, 3, corner_normal), (3, 4, corner_tangent)]
        floats = [(loc, width, np.ascontiguousarray(values, np.float32).reshape(-1, width))
                  for loc, width, values in floats if values is not None]
        if any(len(values) != len(index) for _, _, values in floats):
            raise ValueError("vertex_index and the corner attributes must have one row per corner")
        with self._current():
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
        weakref.finalize(batch, self._gl_context.garbage.append, ("batch", (vao, buffers))).atexit = False
        return batch

    def render_target(self, width, height, pair=False):
        with self._current():
            return _RenderTarget(self, width, height, pair)

    def target_textures(self, target):
        out = {"color": target.color, "id": target.id, "uv": target.uv}
        if target.color_minus is not None:
            out["color_minus"] = target.color_minus
        return out

    def draw(self, spec, target, batch, samplers, constants):
        GL = self.GL
        width, height = target.size
        with self._current():
            program, locations = self.shader(spec)
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

    def finish(self):
        with self._current():
            self.GL.glFinish()
            self._timer.resolve()

    # GPU timings (gl_timing.GpuTimer) ----------------------------------------
    @property
    def timing(self) -> bool:
        """Time every dispatch and draw under its spec's name."""
        return self._timer.enabled

    @timing.setter
    def timing(self, on: bool):
        self._timer.enabled = on

    def begin_timer(self, name):
        self._timer.begin(name)

    def end_timer(self):
        self._timer.end()

    def timer(self, name):
        """Time the GPU work submitted inside the `with` block under `name`."""
        return self._timer.span(name)

    @property
    def gpu_timings(self) -> dict:
        """{name: [seconds, ...]} of the finished timers (waits for pending ones)."""
        return self._timer.timings

    def reset_timings(self):
        self._timer.reset()
