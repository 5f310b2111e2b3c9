"""The PyOpenGL backend's headless EGL context.

OpenGL 4.5 core (4.3 is enough: compute shaders, image load/store), made
current with no surface. `platform="auto"` (default) uses a hardware EGL
device (EGL_EXT_platform_device) if one is enumerated, else Mesa's
surfaceless platform (EGL_PLATFORM_SURFACELESS_MESA: llvmpipe on a machine
without a GPU); "surfaceless" and "device" force one (a forced "device"
accepts Mesa's software device too). Only Mesa llvmpipe has been tested.

PyOpenGL is loaded on first use (`load_gl`), not on import, so the backend
package imports without it. `PYOPENGL_PLATFORM=egl` is set here if unset; it
must be set before anything imports `OpenGL` in the process.
"""
from __future__ import annotations

import contextlib
import ctypes
import os

_GL = None


def load_gl():
    """(GL, EGL) of PyOpenGL on EGL; ImportError with the pip line without it."""
    global _GL
    if _GL is None:
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        try:
            from OpenGL import EGL, GL
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "PyOpenGLBackend needs PyOpenGL (an optional, tools-only dependency): "
                "pip install PyOpenGL") from exc
        if os.environ.get("PYOPENGL_PLATFORM") != "egl":
            raise RuntimeError("PyOpenGLBackend needs PYOPENGL_PLATFORM=egl before OpenGL is imported")
        _GL = (GL, EGL)
    return _GL


_EGL_PLATFORM_SURFACELESS_MESA = 0x31DD
_EGL_PLATFORM_DEVICE_EXT = 0x313F


class EglContext:
    """One EGL context; `current()` makes it current around a call.

    Sharing a process with Blender (whose gpu module also uses EGL):
    `current()` restores the previously current context (Blender's) on
    return, so neither breaks the other. `platform` says which display was used.
    """

    def __init__(self, GL, EGL, platform: str = "auto"):
        self.GL, self.EGL = GL, EGL
        self._depth = 0
        self._saved = None
        # GL objects of collected handles, deleted at the next call (GC may run
        # while another context is current, so finalizers never call GL).
        self.garbage = []
        self._create(platform)

    def _displays(self, platform):
        """Candidate EGL displays, best first: (description, display)."""
        EGL = self.EGL
        devices = []
        if platform in ("auto", "device"):
            try:
                from OpenGL.EGL.EXT.device_enumeration import eglQueryDevicesEXT
                from OpenGL.EGL.EXT.device_query import eglQueryDeviceStringEXT

                found = (EGL.EGLDeviceEXT * 16)()
                count = EGL.EGLint()
                if eglQueryDevicesEXT(16, found, ctypes.pointer(count)):
                    for i in range(count.value):
                        extensions = eglQueryDeviceStringEXT(found[i], EGL.EGL_EXTENSIONS) or b""
                        software = b"EGL_MESA_device_software" in extensions
                        if platform == "device" or not software:
                            devices.append((software, i, found[i]))
            except Exception:  # no device enumeration: surfaceless only
                devices = []
        for software, i, device in sorted(devices, key=lambda d: d[:2]):
            yield f"EGL device {i}", lambda device=device: EGL.eglGetPlatformDisplayEXT(
                _EGL_PLATFORM_DEVICE_EXT, device, None)
        if platform in ("auto", "surfaceless"):
            yield "Mesa surfaceless", lambda: EGL.eglGetPlatformDisplayEXT(
                _EGL_PLATFORM_SURFACELESS_MESA, EGL.EGL_DEFAULT_DISPLAY, None)

    def _create(self, platform):
        if platform not in ("auto", "device", "surfaceless"):
            raise ValueError(f"platform must be 'auto', 'device' or 'surfaceless', got {platform!r}")
        errors = []
        for description, get_display in self._displays(platform):
            try:
                self._display, self._context = self._context_on(get_display())
                self.platform = description
                return
            except Exception as exc:  # try the next display
                errors.append(f"{description}: {exc}")
        raise RuntimeError("EGL: no OpenGL 4.3+ core context; " + ("; ".join(errors) or "no display"))

    def _context_on(self, display):
        EGL = self.EGL
        if not display:
            raise RuntimeError("no display")
        major, minor = EGL.EGLint(), EGL.EGLint()
        if not EGL.eglInitialize(display, ctypes.pointer(major), ctypes.pointer(minor)):
            raise RuntimeError("eglInitialize failed")
        if not EGL.eglBindAPI(EGL.EGL_OPENGL_API):
            raise RuntimeError("no desktop OpenGL API")
        config, count = EGL.EGLConfig(), EGL.EGLint()
        attrs = (EGL.EGLint * 5)(EGL.EGL_RENDERABLE_TYPE, EGL.EGL_OPENGL_BIT,
                                 EGL.EGL_SURFACE_TYPE, 0, EGL.EGL_NONE)
        if not EGL.eglChooseConfig(display, attrs, ctypes.pointer(config), 1,
                                   ctypes.pointer(count)) or count.value < 1:
            raise RuntimeError("no OpenGL config")
        for minor_version in (5, 4, 3):
            ctx_attrs = (EGL.EGLint * 7)(
                EGL.EGL_CONTEXT_MAJOR_VERSION, 4, EGL.EGL_CONTEXT_MINOR_VERSION, minor_version,
                EGL.EGL_CONTEXT_OPENGL_PROFILE_MASK, EGL.EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT,
                EGL.EGL_NONE)
            context = EGL.eglCreateContext(display, config, EGL.EGL_NO_CONTEXT, ctx_attrs)
            if context:
                return display, context
        raise RuntimeError("cannot create an OpenGL 4.3+ core context")

    def _is_current(self, current=None) -> bool:
        if current is None:
            current = self.EGL.eglGetCurrentContext()
        return bool(current) and ctypes.cast(current, ctypes.c_void_p).value == \
            ctypes.cast(self._context, ctypes.c_void_p).value

    @contextlib.contextmanager
    def current(self):
        """Make this context current; restore the previous one after."""
        if self._depth == 0:
            EGL = self.EGL
            previous = EGL.eglGetCurrentContext()
            self._saved = None
            if not self._is_current(previous):
                if previous:
                    self._saved = (EGL.eglGetCurrentDisplay(), EGL.eglGetCurrentSurface(EGL.EGL_DRAW),
                                   EGL.eglGetCurrentSurface(EGL.EGL_READ), previous)
                if not EGL.eglMakeCurrent(self._display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE,
                                          self._context):
                    raise RuntimeError("EGL: eglMakeCurrent failed")
            self._collect_garbage()
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._saved is not None:
                self.EGL.eglMakeCurrent(*self._saved)
                self._saved = None

    def _collect_garbage(self):
        GL = self.GL
        while self.garbage:
            kind, name = self.garbage.pop()
            if kind == "texture":
                GL.glDeleteTextures([name])
            elif kind == "framebuffer":
                GL.glDeleteFramebuffers(1, [name])
            elif kind == "batch":
                vao, buffers = name
                GL.glDeleteVertexArrays(1, [vao])
                GL.glDeleteBuffers(len(buffers), buffers)
