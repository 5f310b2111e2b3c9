"""The engine's backend on plain OpenGL 4.5 through PyOpenGL, without Blender.

Same interface as `addon.gpu_backend.BlenderGPUBackend` (see
`engine/backend.py`), plus `read_fixed`, `shader`, the GPU timers below and
the context's `platform`, `version` and `renderer`. The kernels are the
`gpu_kernels` specs, compiled from the same GLSL bodies as in Blender. It
never imports `bpy`. PyOpenGL is an optional dependency (tools, tests): it is
imported when a `PyOpenGLBackend` is created, and a missing PyOpenGL raises
ImportError with the pip line.

`PyOpenGLBackend` composes one part per job:

- `gl_context`: loading PyOpenGL; the headless EGL context (`platform`:
  "auto", "device" or "surfaceless"); making it current; deleting the GL
  objects of dropped handles;
- `gl_shaders`: a spec's GLSL source (`glsl_declarations`, `glsl_source`,
  re-exported here);
- `gl_programs`: compiled programs, push constants, bindings, dispatches;
- `gl_textures`: textures, upload, clear and read-back;
- `gl_raster`: vertex batches, render targets and draws;
- `gl_timing`: GPU timestamp timers.

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

They are resolved lazily (on reading `gpu_timings` or on `finish()`), so
timing does not stall the pipeline. `timer()` works whether or not `timing`
is on; `begin_timer(name)` / `end_timer()` are the same without `with`.
"""
from __future__ import annotations

from ... import gpu_kernels as K
from .gl_context import EglContext, load_gl
from .gl_programs import Programs
from .gl_raster import Raster
from .gl_shaders import GLSL_VERSION, glsl_declarations, glsl_source  # noqa: F401 (re-exported)
from .gl_textures import Textures
from .gl_timing import GpuTimer


class PyOpenGLBackend:
    name = "pyopengl"

    def __init__(self, timing: bool = False, platform: str = "auto"):
        self.GL, self.EGL = load_gl()
        self._gl_context = EglContext(self.GL, self.EGL, platform)
        self.platform = self._gl_context.platform
        self._timer = GpuTimer(self.GL, self._gl_context, timing)
        self._textures = Textures(self.GL, self._gl_context)
        self._programs = Programs(self.GL, self._gl_context, self._textures, self._timer)
        self._raster = Raster(self.GL, self._gl_context, self._textures, self._programs, self._timer)
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

    # Raster (gl_raster.Raster) -------------------------------------------------
    def mesh_batch(self, vertex_index, corner_uv):
        return self._raster.mesh_batch(vertex_index, corner_uv)

    def render_target(self, width, height, pair=False):
        return self._raster.render_target(width, height, pair)

    def target_textures(self, target):
        return self._raster.target_textures(target)

    def draw(self, spec, target, batch, samplers, constants):
        self._raster.draw(spec, target, batch, samplers, constants)

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
