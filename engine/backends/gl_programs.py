"""Kernels of the PyOpenGL backend: programs compiled from the `gpu_kernels`
specs (source from `gl_shaders`), their push constants and bindings, and
compute dispatches.

As in Blender, image units and texture units are separate namespaces
(`Image.slot` is the image unit, `Sampler.slot` the texture unit). Every
dispatch ends with `glMemoryBarrier(ALL)` so the next pass sees its writes.
"""
from __future__ import annotations

import numpy as np

from .gl_shaders import glsl_source, image_access


class Programs:
    """Compiled programs by spec name, and the calls that run them."""

    def __init__(self, GL, context, textures, timer):
        self.GL, self._context = GL, context
        self._textures, self._timer = textures, timer  # formats of images; per-kernel timings
        self._cache = {}
        self._uniform_buffers = {}  # spec name -> the buffer of its uniform block, refilled at each use

    def _compile(self, spec):
        GL = self.GL
        stages = ([("compute", GL.GL_COMPUTE_SHADER)] if spec.is_compute else
                  [("vertex", GL.GL_VERTEX_SHADER), ("fragment", GL.GL_FRAGMENT_SHADER)])
        program = GL.glCreateProgram()
        shaders = []
        for stage, kind in stages:
            source = glsl_source(spec, stage)
            shader = GL.glCreateShader(kind)
            GL.glShaderSource(shader, source)
            GL.glCompileShader(shader)
            if not GL.glGetShaderiv(shader, GL.GL_COMPILE_STATUS):
                log = GL.glGetShaderInfoLog(shader)
                log = log.decode() if isinstance(log, bytes) else str(log)
                numbered = "\n".join(f"{i + 1:4d} {line}" for i, line in enumerate(source.splitlines()))
                raise RuntimeError(f"{spec.name} ({stage}) does not compile:\n{log}\n{numbered}")
            GL.glAttachShader(program, shader)
            shaders.append(shader)
        GL.glLinkProgram(program)
        for shader in shaders:
            GL.glDetachShader(program, shader)
            GL.glDeleteShader(shader)
        if not GL.glGetProgramiv(program, GL.GL_LINK_STATUS):
            log = GL.glGetProgramInfoLog(program)
            raise RuntimeError(f"{spec.name} does not link:\n{log}")
        locations = {name: GL.glGetUniformLocation(program, name) for _, name in spec.push_constants}
        return program, locations

    def shader(self, spec):
        """(program, {push constant: uniform location}), compiled on first use."""
        program = self._cache.get(spec.name)
        if program is None:
            with self._context.current():
                program = self._cache[spec.name] = self._compile(spec)
        return program

    def set_constants(self, spec, program, locations, constants):
        """Set push constants, which are plain uniforms here, and fill and
        bind the spec's uniform block from the constants that are its members."""
        GL = self.GL
        kinds = {n: k for k, n in spec.push_constants}
        block = spec.uniform_block
        if block is not None:
            constants = dict(constants)
            self._fill_uniform_block(spec, {n: constants.pop(n) for n in block.member_names if n in constants})
        for name, value in constants.items():
            if name not in kinds:
                raise KeyError(f"{spec.name} has no push constant {name!r}")
            location = locations[name]
            if location < 0:
                continue  # optimised away by the compiler
            kind = kinds[name]
            if kind == "MAT4":
                # Row-major numpy, transposed by GL: the same matrix as in Blender.
                GL.glProgramUniformMatrix4fv(program, location, 1, GL.GL_TRUE,
                                             np.ascontiguousarray(value, np.float32))
            elif kind == "MAT3":
                GL.glProgramUniformMatrix3fv(program, location, 1, GL.GL_TRUE,
                                             np.ascontiguousarray(value, np.float32))
            elif kind in ("INT", "BOOL"):
                GL.glProgramUniform1i(program, location, int(value))
            elif kind == "UINT":
                GL.glProgramUniform1ui(program, location, int(value))
            elif kind.startswith("IVEC"):
                values = [int(v) for v in value]
                getattr(GL, f"glProgramUniform{len(values)}i")(program, location, *values)
            elif kind == "FLOAT":
                GL.glProgramUniform1f(program, location, float(value))
            elif kind.startswith("VEC"):
                values = [float(v) for v in value]
                getattr(GL, f"glProgramUniform{len(values)}f")(program, location, *values)
            else:
                raise ValueError(f"unsupported push constant type {kind}")

    def _fill_uniform_block(self, spec, values: dict) -> None:
        """The block's std140 bytes into its buffer (fresh storage each time:
        a draw still queued keeps the values it was given), bound at its slot."""
        GL, block = self.GL, spec.uniform_block
        data = np.frombuffer(block.pack(values), np.uint8)
        buffer = self._uniform_buffers.get(spec.name)
        if buffer is None:
            buffer = self._uniform_buffers[spec.name] = int(GL.glGenBuffers(1))
        GL.glBindBuffer(GL.GL_UNIFORM_BUFFER, buffer)
        GL.glBufferData(GL.GL_UNIFORM_BUFFER, data.nbytes, data, GL.GL_DYNAMIC_DRAW)
        GL.glBindBuffer(GL.GL_UNIFORM_BUFFER, 0)
        GL.glBindBufferBase(GL.GL_UNIFORM_BUFFER, block.slot, buffer)

    def bind_samplers(self, spec, samplers):
        GL = self.GL
        slots = {s.name: s.slot for s in spec.samplers}
        for name, tex in samplers.items():
            if name not in slots:
                raise KeyError(f"{spec.name} has no sampler {name!r}")
            GL.glActiveTexture(GL.GL_TEXTURE0 + slots[name])
            GL.glBindTexture(GL.GL_TEXTURE_2D, tex.id)
        GL.glActiveTexture(GL.GL_TEXTURE0)

    def _bind_images(self, spec, images):
        GL = self.GL
        declared = {i.name: i for i in spec.images}
        for name, tex in images.items():
            if name not in declared:
                raise KeyError(f"{spec.name} has no image {name!r}")
            image = declared[name]
            access = {"readonly": GL.GL_READ_ONLY, "writeonly": GL.GL_WRITE_ONLY}.get(
                image_access(image), GL.GL_READ_WRITE)
            internal, _, _ = self._textures.formats(image.format)
            GL.glBindImageTexture(image.slot, tex.id, 0, GL.GL_FALSE, 0, access, internal)

    def dispatch(self, spec, groups, images, samplers, constants):
        GL = self.GL
        with self._context.current():
            program, locations = self.shader(spec)
            GL.glUseProgram(program)
            self.set_constants(spec, program, locations, constants)
            self.bind_samplers(spec, samplers)
            self._bind_images(spec, images)
            with self._timer.auto(spec.name):
                GL.glDispatchCompute(*[int(g) for g in groups])
                GL.glMemoryBarrier(GL.GL_ALL_BARRIER_BITS)
            GL.glUseProgram(0)
