"""The engine's backend on Blender's own `gpu` module (OpenGL, Vulkan, Metal).

Only `GPUShaderCreateInfo` + `gpu.shader.create_from_info` are used.
Call `gpu_context.ensure_gpu()` first when running in background mode.
"""
from __future__ import annotations

import numpy as np

import gpu
from gpu.types import Buffer, GPUShaderCreateInfo, GPUStageInterfaceInfo, GPUTexture, GPUUniformBuf

from ..gpu_kernels import FIXED_TO_FLOAT

_CHANNELS = {"R32F": 1, "RG32F": 2, "RGBA32F": 4, "R32I": 1, "RGBA32I": 4,
             "DEPTH_COMPONENT32F": 1}


def _create_info(spec) -> GPUShaderCreateInfo:
    info = GPUShaderCreateInfo()
    for image in spec.images:
        info.image(image.slot, image.format, image.type, image.name,
                   qualifiers=set(image.qualifiers))
    for sampler in spec.samplers:
        info.sampler(sampler.slot, sampler.type, sampler.name)
    for kind, name in spec.push_constants:
        info.push_constant(kind, name)
    block = spec.uniform_block
    if block is not None:  # the constants beyond 128 bytes of push constants
        info.typedef_source(block.struct_source())
        info.uniform_buf(block.slot, block.type_name, block.name)
    if spec.is_compute:
        info.local_group_size(*spec.local_size)
        info.compute_source(spec.compute_source())
        return info, None
    interface = GPUStageInterfaceInfo(spec.name + "_iface")
    for qualifier, kind, name in spec.interface:
        getattr(interface, qualifier)(kind, name)
    for slot, kind, name in spec.vertex_inputs:
        info.vertex_in(slot, kind, name)
    info.vertex_out(interface)
    for slot, kind, name in spec.fragment_outputs:
        info.fragment_out(slot, kind, name)
    info.vertex_source(spec.vertex_source())
    info.fragment_source(spec.fragment_source())
    # The interface must outlive the create-info until compilation.
    return info, interface


def _has_uniform(shader, name: str) -> bool:
    try:
        return shader.uniform_from_name(name) >= 0
    except ValueError:  # "uniform ... not found"
        return False


class _RenderTarget:
    def __init__(self, width: int, height: int, pair: bool = False):
        self.size = (width, height)
        self.color = GPUTexture((width, height), format="RGBA32F")
        self.id = GPUTexture((width, height), format="R32I")
        self.uv = GPUTexture((width, height), format="RGBA32F")
        # A pair target (RASTERIZE_PAIR) also holds R-'s colour.
        self.color_minus = GPUTexture((width, height), format="RGBA32F") if pair else None
        self.depth = GPUTexture((width, height), format="DEPTH_COMPONENT32F")
        self.framebuffer = gpu.types.GPUFrameBuffer(
            depth_slot=self.depth, color_slots=(self.color, self.id, self.uv) + ((self.color_minus,) if pair else ()))


class BlenderGPUBackend:
    name = "blender-gpu"

    def __init__(self):
        self._shaders = {}
        self._constants = {}  # per shader: its push constants the compiler kept
        self._uniform_bufs = {}  # per shader with a uniform block: its buffer, refilled at each use
        self._last_target = None
        self._probe = GPUTexture((1, 1), format="R32F")
        self._framebuffer_clears = None  # decided at the first draw (_framebuffer_clear_zeroes_integers)

    # Textures -----------------------------------------------------------------
    def texture(self, width, height, fmt, data=None):
        if data is None:
            tex = GPUTexture((width, height), format=fmt)
            self.clear(tex, 0)
            return tex
        if fmt.endswith("I"):
            raise ValueError("integer textures cannot be uploaded; they start at 0")
        flat = np.ascontiguousarray(data, dtype=np.float32).reshape(-1)
        expected = width * height * _CHANNELS[fmt]
        if flat.size != expected:
            raise ValueError(f"texture data has {flat.size} values, {fmt} {width}x{height} needs {expected}")
        return GPUTexture((width, height), format=fmt, data=Buffer("FLOAT", flat.size, flat))

    def clear(self, texture, value=0):
        channels = _CHANNELS.get(texture.format, 4)
        if texture.format.endswith("I"):
            texture.clear(format="INT", value=(int(value),) * channels)
        else:
            texture.clear(format="FLOAT", value=(float(value),) * channels)

    def read(self, texture):
        width, height = texture.width, texture.height
        channels = _CHANNELS[texture.format]
        if texture.format == "R32I":
            # Integer textures read back as garbage: convert on the GPU first.
            return self.read_fixed(texture, height, fixed=False)
        buf = texture.read()
        # Flatten first: on 4.5/5.0 the buffer reports reversed strides.
        buf.dimensions = width * height * channels
        return np.asarray(buf, dtype=np.float32).reshape(height, width, channels).copy()

    def read_fixed(self, texture, rows, fixed=True, row0=0):
        """Read `rows` rows of an R32I accumulator as floats.

        fixed=True: 64-bit fixed-point pairs (hi `rows` rows above lo);
        `row0`: the first row read (a block of a taller accumulator).
        """
        out = GPUTexture((texture.width, rows), format="R32F")
        self.dispatch(FIXED_TO_FLOAT, FIXED_TO_FLOAT.groups(texture.width, rows),
                      images={"accumulator": texture, "result": out}, samplers={},
                      constants={"hi_offset": rows if fixed else 0, "row0": row0})
        return self.read(out)

    # Kernels ------------------------------------------------------------------
    def shader(self, spec):
        shader = self._shaders.get(spec.name)
        if shader is None:
            info, _interface = _create_info(spec)
            shader = gpu.shader.create_from_info(info)
            self._shaders[spec.name] = shader
            # A variant that compiles a path out (accumulate_gradient_kernel)
            # loses its push constants on OpenGL: they are uniforms there.
            self._constants[spec.name] = {n for _, n in spec.push_constants if _has_uniform(shader, n)}
        return shader

    def _bind(self, spec, shader, images, samplers, constants):
        shader.bind()
        for name, tex in images.items():
            shader.image(name, tex)
        for name, tex in samplers.items():
            shader.uniform_sampler(name, tex)
        block = spec.uniform_block
        if block is not None:
            constants = dict(constants)
            self._bind_uniform_block(spec, shader, {n: constants.pop(n) for n in block.member_names
                                                    if n in constants})
        kinds = dict((n, k) for k, n in spec.push_constants)
        present = self._constants[spec.name]
        for name, value in constants.items():
            if name not in present:
                continue
            kind = kinds[name]
            if kind == "MAT4":
                # Column-major, as GLSL expects.
                shader.uniform_float(name, np.asarray(value, np.float32).T.reshape(-1).tolist())
            elif kind in ("INT", "IVEC2", "IVEC3", "IVEC4"):
                shader.uniform_int(name, value)
            else:
                shader.uniform_float(name, value)

    def _bind_uniform_block(self, spec, shader, values: dict) -> None:
        """Fill the spec's uniform buffer with `values` (its members) and bind
        it. The words go in as integers: a float's bits pass unchanged, and an
        integer key whose bits spell a NaN is never read as a float."""
        block = spec.uniform_block
        words = np.frombuffer(block.pack(values), np.int32).tolist()
        data = Buffer("INT", len(words), words)
        ubo = self._uniform_bufs.get(spec.name)
        if ubo is None:
            ubo = self._uniform_bufs[spec.name] = GPUUniformBuf(data)
        else:
            ubo.update(data)
        shader.uniform_block(block.name, ubo)

    def dispatch(self, spec, groups, images, samplers, constants):
        shader = self.shader(spec)
        self._bind(spec, shader, images, samplers, constants)
        gpu.compute.dispatch(shader, *groups)

    # Raster -------------------------------------------------------------------
    def mesh_batch(self, vertex_index, corner_uv):
        fmt = gpu.types.GPUVertFormat()
        fmt.attr_add(id="vertex_index", comp_type="I32", len=1, fetch_mode="INT")
        fmt.attr_add(id="corner_uv", comp_type="F32", len=2, fetch_mode="FLOAT")
        n = len(vertex_index)
        vbo = gpu.types.GPUVertBuf(fmt, n)
        vbo.attr_fill("vertex_index", np.ascontiguousarray(vertex_index, np.int32).reshape(n, 1))
        vbo.attr_fill("corner_uv", np.ascontiguousarray(corner_uv, np.float32).reshape(n, 2))
        return gpu.types.GPUBatch(type="TRIS", buf=vbo)

    def render_target(self, width, height, pair=False):
        return _RenderTarget(width, height, pair)

    def target_textures(self, target):
        out = {"color": target.color, "id": target.id, "uv": target.uv}
        if target.color_minus is not None:
            out["color_minus"] = target.color_minus
        return out

    @property
    def framebuffer_clears(self) -> bool:
        """Whether draws clear their attachments with one framebuffer clear
        (where the driver zeroes the integer id with it, probed at the first
        use) rather than a clear of each texture; tools/bench.py sets it to
        compare the two."""
        if self._framebuffer_clears is None:
            self._framebuffer_clears = self._framebuffer_clear_zeroes_integers()
        return self._framebuffer_clears

    @framebuffer_clears.setter
    def framebuffer_clears(self, value: bool) -> None:
        self._framebuffer_clears = bool(value)

    def draw(self, spec, target, batch, samplers, constants):
        shader = self.shader(spec)
        width, height = target.size
        with target.framebuffer.bind():
            if self.framebuffer_clears:
                # One clear, which llvmpipe bins with the draw; a clear of
                # each texture ends its binning first. Back to back a 256 x 256
                # draw took 11 -> 6 ms; in a fit's steps, where compute passes
                # flush anyway, 0.94-1.01x (tools/bench.py --only clears).
                target.framebuffer.clear(color=(0.0, 0.0, 0.0, 0.0), depth=1.0)
            else:
                self._clear_each(target)
            gpu.state.viewport_set(0, 0, width, height)
            gpu.state.depth_test_set("LESS")
            gpu.state.depth_mask_set(True)
            gpu.state.blend_set("NONE")
            gpu.state.face_culling_set("NONE")
            self._bind(spec, shader, {}, samplers, constants)
            batch.draw(shader)
            self._last_target = target
            gpu.state.depth_test_set("NONE")
            gpu.state.depth_mask_set(False)

    def _clear_each(self, target):
        self.clear(target.color, 0.0)
        self.clear(target.id, 0)
        self.clear(target.uv, 0.0)
        if target.color_minus is not None:
            self.clear(target.color_minus, 0.0)
        self.clear(target.depth, 1.0)

    def _framebuffer_clear_zeroes_integers(self) -> bool:
        """Whether a framebuffer clear to 0.0 leaves the triangle-id (R32I)
        attachment at 0: OpenGL leaves a float clear of an integer buffer
        undefined (Mesa, Vulkan and Metal give 0). Otherwise draws clear
        each texture."""
        probe = _RenderTarget(4, 4)
        self.clear(probe.id, 7)
        self.clear(probe.color, 0.5)
        with probe.framebuffer.bind():
            probe.framebuffer.clear(color=(0.0, 0.0, 0.0, 0.0), depth=1.0)
        return not (self.read(probe.id).any() or self.read(probe.color).any())

    def finish(self):
        # Draws can be deferred (llvmpipe bins them until a flush): reading one
        # pixel of the last drawn target waits for them; compute results are
        # waited for by a one-texel texture read.
        if self._last_target is not None:
            with self._last_target.framebuffer.bind():
                self._last_target.framebuffer.read_color(0, 0, 1, 1, 4, 0, "FLOAT")
        self._probe.read()
