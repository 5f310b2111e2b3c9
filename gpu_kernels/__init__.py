"""Every GLSL kernel of the optimizer, declared once for every backend.

A kernel is a `KernelSpec`: its GLSL body files plus the resources it binds
(images, samplers, push constants, vertex inputs, interfaces, fragment
outputs). A backend turns a spec into whatever it compiles: Blender's
`GPUShaderCreateInfo`, or a plain `#version 450` source for PyOpenGL.
No backend keeps its own copy of a kernel.
"""
from __future__ import annotations

import math
import dataclasses
import struct
from dataclasses import dataclass, field
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent

# Fixed-point scale of the gradient accumulators: one unit of per-pixel loss
# difference is 2**24 counts. A pixel term is bounded by 4.5 (premultiplied
# RGBA in [0,1], perturbed by at most a few percent), so it fits in 32 bits;
# sums go to a 64-bit (hi, lo) pair, so 4K x 4K pixels cannot overflow.
FIXED_SCALE = float(1 << 24)
# Full-image estimator: one loss-difference sum per sub-step of an Adam step.
MAX_VIEWS_PER_STEP = 64
# Image bindings a kernel may use: the least OpenGL guarantees to a compute
# shader (and what NVIDIA's OpenGL gives).
MAX_IMAGES_PER_KERNEL = 8

# Bit flags passed to the kernels; the same names are #defined in the GLSL.
FLAG_POSITIONS = 1  # accumulate_gradient: charge vertices
FLAG_TEXTURE = 2  # accumulate_gradient: charge texels
FLAG_FULL_IMAGE = 4  # accumulate_gradient and adam_step: the full-image estimator
ADAM_CLAMP01 = 8  # adam_step: clamp to [0, 1]
ADAM_REGULARIZER = 16  # adam_step: add the smoothness gradient
ADAM_WORKLIST = 64  # adam_step: visit the worklist of touched texels, not every texel
FLAG_SILHOUETTE = 128  # accumulate_gradient: charge vertices the coverage (alpha) difference only
FLAG_SRGB_LOSS = 256  # accumulate_gradient: compare sRGB-encoded renders (the target is encoded already)
# accumulate_gradient: each texel channel in `tex_channels` is charged the whole pixel difference
# (roughness, metallic: a change reaches every colour channel), not its own colour channel's share
FLAG_COUPLED = 512
# adam_step: the texels are tangent-space normals stored as (x, y, z) / 2 + 1/2: after the update,
# rebuild z = sqrt(1 - x^2 - y^2) from x and y (unit_normal_from_xy in common.glsl)
ADAM_UNIT_NORMAL = 1024
# accumulate_gradient: compare log2(colour + 1) of linear renders (the target is transformed already),
# where Workbench averages its antialiasing samples (engine/pixel_filter.py)
FLAG_LOG_LOSS = 2048
# accumulate_gradient: the target is residual_target's effective one; the loss was accumulated there
FLAG_EFFECTIVE_TARGET = 4096
# score: average the samples as log2(c + 1); this is the first / the last
# sample of a view; score the alpha channel only
SCORE_LOG_MEAN = 1 << 13
SCORE_FIRST = 1 << 14
SCORE_FINISH = 1 << 15
SCORE_COVERAGE = 1 << 16
# accumulate_gradient: also sum each texel channel's sensitivity |c+ - c-| (its pixels' finite
# differences) into the accumulator's rows 2..4 x height; adam_step: step by the ratio of the
# two sums (a SART-style, residual-scaled update: Update.adam_step), not by Adam's
FLAG_SENSITIVITY = 1 << 17
# residual_target: the residual in the texels' encoding (a SART view visit); the texels are sRGB
FLAG_TEXEL_RESIDUAL = 1 << 18
FLAG_TEXEL_SRGB = 1 << 19
# ... and a pixel whose coverage (alpha) misses the target's by more than this asks nothing of
# the texels: a joint fit's inexact silhouette, which the texels cannot fix
COVERAGE_TOLERANCE = 0.1
# residual_target: update the running mean only (no effective target, no loss)
FLAG_MEAN_ONLY = 1 << 20
# accumulate_gradient: a SART visit's point from one plain render: every texel of each pixel's
# bilinear footprint is charged its weight times the residual (no perturbation, no strata)
FLAG_TEXEL_WEIGHTS = 1 << 21
# ... whose sensitivity (the weight) is the same in the three channels: G sums it in channel 0
# alone, and adam_step reads it there for all three (2 of a corner's 7 atomics fewer)
ADAM_SHARED_SENSITIVITY = 1 << 22
# residual_target: a lit SART visit's residual, turned into a base-colour one by the
# pixel's gain and base colour (RASTERIZE_LIT_FIT_GAIN's color_minus and uv.zw)
FLAG_TEXEL_GAIN = 1 << 23
# accumulate_gradient (with FLAG_POSITIONS): also charge each triangle's ring, the vertices its
# corners' recomputed normals depend on (a lit fit moving vertices: engine/frames.py)
FLAG_RING = 1 << 24
# A fitted normal-map texel tilts at most this far from its surface normal: z >= NORMAL_Z_MIN,
# so it stays unit with z > 0 and sqrt(1 - x^2 - y^2) keeps float precision.
NORMAL_Z_MIN = 0.05
NORMAL_XY_MAX = math.sqrt(1.0 - NORMAL_Z_MIN ** 2)
# Worklist entries per adam_step invocation at the worklist's capacity: the
# dispatch is sized for the worst case (no indirect dispatch from Python),
# and on llvmpipe even an idle invocation costs ~100 ns.
WORKLIST_PER_INVOCATION = 16


@dataclass(frozen=True)
class Image:
    slot: int
    format: str  # 'R32I', 'RGBA32F', ...
    type: str  # 'INT_2D', 'FLOAT_2D'
    name: str
    qualifiers: frozenset = frozenset({"READ", "WRITE"})


@dataclass(frozen=True)
class Sampler:
    slot: int
    type: str  # 'FLOAT_2D' or 'INT_2D'
    name: str


# Push constants a kernel may declare, in bytes: what Vulkan guarantees (and
# Metal's argument limit); beyond it Blender warns "Consider using UBO" and
# takes a uniform-buffer fallback on such devices. Counted as Blender counts
# them (push_constant_bytes); what does not fit goes in a UniformBlock.
MAX_PUSH_CONSTANT_BYTES = 128


@dataclass(frozen=True)
class UniformBlock:
    """Constants a kernel reads from a uniform buffer (std140), as
    `name.member` in its GLSL: Blender's `GPUShaderCreateInfo.uniform_buf`
    with its struct in `typedef_source`, a std140 block in PyOpenGL. The
    members are VEC4 or IVEC4 only, whose std140 layout (16 bytes each, in
    order) no backend pads differently (a vec3 is 12 or 16 bytes by backend).
    The caller passes each member's four values among the constants of a
    draw or dispatch; `pack` lays them out."""

    slot: int
    type_name: str  # the GLSL struct
    name: str  # the instance the GLSL reads
    members: tuple  # (kind 'VEC4' | 'IVEC4', member name)

    def __post_init__(self):
        assert all(kind in ("VEC4", "IVEC4") for kind, _ in self.members), self.members

    @property
    def member_names(self) -> frozenset:
        return frozenset(name for _, name in self.members)

    def struct_source(self) -> str:
        fields = " ".join(f"{kind.lower()} {name};" for kind, name in self.members)
        return f"struct {self.type_name} {{ {fields} }};\n"

    def pack(self, values: dict) -> bytes:
        """The block's std140 bytes from {member: four values} (every member given)."""
        missing = self.member_names - set(values)
        if missing:
            raise KeyError(f"uniform block {self.name} lacks {sorted(missing)}")
        out = b""
        for kind, name in self.members:
            four = tuple(values[name])
            if len(four) != 4:
                raise ValueError(f"{self.name}.{name} takes four values, got {len(four)}")
            out += struct.pack("<4i", *map(int, four)) if kind == "IVEC4" else struct.pack("<4f", *map(float, four))
        return out


_PUSH_SIZES = {"FLOAT": 4, "INT": 4, "UINT": 4, "BOOL": 4, "VEC2": 8, "IVEC2": 8, "UVEC2": 8,
               "VEC3": 12, "IVEC3": 12, "UVEC3": 12, "VEC4": 16, "IVEC4": 16, "UVEC4": 16,
               "MAT3": 48, "MAT4": 64}


def push_constant_bytes(push_constants) -> int:
    """The size Blender gives a list of (type, name) push constants when it
    checks them against 128 bytes (bpy's GPUShaderCreateInfo.push_constant,
    `constants_calc_size`: its own padding rule, calibrated on the warnings it
    printed for our former lit kernels: 136, 144 and 152 bytes). Blender
    checks after each constant is added, so `max_push_constant_bytes` takes
    every prefix."""
    size_prev = size_last = 0
    for kind, _name in push_constants:
        size, pad = _PUSH_SIZES[kind], 0
        if size_last and size_last != size:
            pack = 8 if size == 8 else 16
            pad = pack - size_last % pack if size_last < size else size_prev % pack
        elif size == 12:
            pad = 4
        size_prev += pad + size
        size_last = size
    return size_prev + size_prev % 16


def max_push_constant_bytes(spec) -> int:
    """The largest size Blender counts while the spec's push constants are
    added one by one (it warns at each one past MAX_PUSH_CONSTANT_BYTES)."""
    pcs = spec.push_constants
    return max((push_constant_bytes(pcs[:i]) for i in range(1, len(pcs) + 1)), default=0)


@dataclass(frozen=True)
class KernelSpec:
    name: str
    sources: tuple  # GLSL files (compute) or (vertex, fragment) file pairs
    images: tuple = ()
    samplers: tuple = ()
    push_constants: tuple = ()  # (type, name)
    local_size: tuple = (8, 8, 1)
    # raster only
    vertex_sources: tuple = ()
    fragment_sources: tuple = ()
    vertex_inputs: tuple = ()  # (slot, type, name)
    interface: tuple = ()  # (qualifier 'flat'|'smooth', type, name)
    fragment_outputs: tuple = ()  # (slot, type, name)
    defines: dict = field(default_factory=dict)
    uniform_block: UniformBlock | None = None  # constants beyond the push constants' 128 bytes

    def groups(self, width: int, height: int) -> tuple:
        """Work groups covering width x height invocations."""
        lx, ly, _ = self.local_size
        return ((width + lx - 1) // lx, (height + ly - 1) // ly, 1)

    @property
    def is_compute(self) -> bool:
        return not self.vertex_sources

    def _read(self, files) -> str:
        defines = "".join(f"#define {k} {v}\n" for k, v in self.defines.items())
        return defines + "\n".join((KERNEL_DIR / f).read_text() for f in files)

    def compute_source(self) -> str:
        return self._read(self.sources)

    def vertex_source(self) -> str:
        return self._read(self.sources + self.vertex_sources)

    def fragment_source(self) -> str:
        return self._read(self.sources + self.fragment_sources)


def _img(slot, fmt, name, quals=("READ", "WRITE")):
    kind = "INT_2D" if fmt.endswith("I") else "FLOAT_2D"
    return Image(slot, fmt, kind, name, frozenset(quals))


_COMMON = ("common.glsl",)
_FIXED = {"FIXED_SCALE": f"{FIXED_SCALE:.1f}", "NORMAL_XY_MAX": f"{NORMAL_XY_MAX:.9f}",
          "COVERAGE_TOLERANCE": f"{COVERAGE_TOLERANCE:.9f}",
          **{name: globals()[name] for name in ("FLAG_POSITIONS", "FLAG_TEXTURE", "FLAG_FULL_IMAGE",
                                                "ADAM_CLAMP01", "ADAM_REGULARIZER",
                                                "ADAM_WORKLIST", "FLAG_SILHOUETTE",
                                                "FLAG_SRGB_LOSS", "FLAG_COUPLED", "ADAM_UNIT_NORMAL",
                                                "FLAG_LOG_LOSS", "FLAG_EFFECTIVE_TARGET",
                                                "SCORE_LOG_MEAN", "SCORE_FIRST", "SCORE_FINISH",
                                                "SCORE_COVERAGE", "FLAG_SENSITIVITY",
                                                "FLAG_TEXEL_RESIDUAL", "FLAG_TEXEL_SRGB", "FLAG_MEAN_ONLY",
                                                "FLAG_TEXEL_WEIGHTS", "ADAM_SHARED_SENSITIVITY",
                                                "FLAG_TEXEL_GAIN", "FLAG_RING")}}

PERTURB = KernelSpec(
    name="perturb",
    sources=_COMMON + ("perturb.glsl",),
    images=(_img(0, "RGBA32F", "theta_plus", ("WRITE",)),
            _img(1, "RGBA32F", "theta_minus", ("WRITE",))),
    samplers=(Sampler(0, "FLOAT_2D", "theta"),),
    push_constants=(("INT", "key"), ("INT", "count"), ("FLOAT", "eps")),
    defines=_FIXED,
)

RASTERIZE = KernelSpec(
    name="rasterize",
    sources=_COMMON + ("vertex_position.glsl", "shading.glsl"),
    vertex_sources=("rasterize_vert.glsl",),
    fragment_sources=("rasterize_frag.glsl",),
    samplers=(Sampler(0, "FLOAT_2D", "positions"), Sampler(1, "FLOAT_2D", "albedo")),
    push_constants=(("MAT4", "view_projection"), ("INT", "texture_key"), ("FLOAT", "texture_eps"),
                    ("INT", "texture_srgb"), ("INT", "texture_stratum")),
    vertex_inputs=((0, "INT", "vertex_index"), (1, "VEC2", "corner_uv")),
    interface=(("flat", "INT", "triangle_id"), ("smooth", "VEC2", "uv")),
    fragment_outputs=((0, "VEC4", "out_color"), (1, "INT", "out_id"),
                      (2, "VEC4", "out_uv")),
    defines=_FIXED,
)

# R+ and R- of a texture step in one draw: RASTERIZE with a fourth output,
# the colour at -texture_eps (Rasterizer.draw(pair=True)).
RASTERIZE_PAIR = dataclasses.replace(
    RASTERIZE, name="rasterize_pair", fragment_sources=("rasterize_pair_frag.glsl",),
    fragment_outputs=RASTERIZE.fragment_outputs + ((3, "VEC4", "out_color_minus"),))

# G's charges, each compiled into a variant or out of it: llvmpipe pays for
# the code of a charge a step does not make (accumulate_gradient.glsl).
G_PATHS = ("G_POSITIONS", "G_TEXELS", "G_TEXEL_WEIGHTS", "G_FULL_IMAGE")
ACCUMULATE_GRADIENT = KernelSpec(
    name="accumulate_gradient",
    sources=_COMMON + ("accumulate_gradient.glsl",),
    images=(_img(0, "R32I", "grad_pos"), _img(1, "R32I", "count_pos"),
            _img(2, "R32I", "grad_tex"), _img(3, "R32I", "count_tex"),
            _img(4, "R32I", "global_acc"), _img(5, "R32I", "loss_acc"),
            _img(6, "R32I", "worklist", ("WRITE",)), _img(7, "R32I", "worklist_length")),
    samplers=(Sampler(0, "FLOAT_2D", "color_plus"), Sampler(1, "FLOAT_2D", "color_minus"),
              Sampler(2, "INT_2D", "id_plus"), Sampler(3, "INT_2D", "id_minus"),
              Sampler(4, "FLOAT_2D", "uv_plus"), Sampler(5, "FLOAT_2D", "uv_minus"),
              Sampler(6, "FLOAT_2D", "target"), Sampler(7, "FLOAT_2D", "triangles"),
              Sampler(8, "FLOAT_2D", "ring_range"), Sampler(9, "FLOAT_2D", "ring")),
    push_constants=(("INT", "key_pos"), ("INT", "key_tex"), ("INT", "slot"),
                    ("INT", "flags"), ("IVEC2", "image_size"), ("IVEC2", "tex_size"),
                    ("INT", "pos_width"), ("INT", "tex_stratum"), ("INT", "tex_channels")),
    defines={**_FIXED, **{path: 1 for path in G_PATHS}},
)


def _g_variant(*paths: str) -> KernelSpec:
    return dataclasses.replace(
        ACCUMULATE_GRADIENT, name="accumulate_gradient_" + "_".join(p[2:].lower() for p in paths),
        defines={**ACCUMULATE_GRADIENT.defines, **{p: int(p in paths) for p in G_PATHS}})


ACCUMULATE_GRADIENT_VARIANTS = {
    frozenset(paths): _g_variant(*paths)
    for paths in (("G_POSITIONS",), ("G_TEXELS",), ("G_TEXEL_WEIGHTS",), ("G_POSITIONS", "G_TEXELS"),
                  ("G_FULL_IMAGE",))}


def accumulate_gradient_kernel(flags: int) -> KernelSpec:
    """G compiled with the charges `flags` asks for only (all of them for a
    combination no fit makes)."""
    if flags & FLAG_FULL_IMAGE:
        paths = {"G_FULL_IMAGE"}
    else:
        paths = {"G_POSITIONS"} if flags & FLAG_POSITIONS else set()
        if flags & FLAG_TEXEL_WEIGHTS:
            paths.add("G_TEXEL_WEIGHTS")
        elif flags & FLAG_TEXTURE:
            paths.add("G_TEXELS")
    return ACCUMULATE_GRADIENT_VARIANTS.get(frozenset(paths), ACCUMULATE_GRADIENT)


ADAM_STEP = KernelSpec(
    name="adam_step",
    sources=_COMMON + ("adam_step.glsl",),
    images=(_img(0, "RGBA32F", "theta"), _img(1, "RGBA32F", "moment1"),
            _img(2, "RGBA32F", "moment2"), _img(3, "R32I", "grad"),
            _img(4, "R32I", "count"), _img(5, "R32I", "global_acc", ("READ",)),
            _img(6, "R32I", "worklist", ("READ",)), _img(7, "R32I", "worklist_length", ("READ",))),
    samplers=(Sampler(0, "FLOAT_2D", "regularizer_grad"),),
    push_constants=(("INT", "seed"), ("INT", "substep0"), ("INT", "substeps"),
                    ("INT", "salt"), ("INT", "count_total"), ("INT", "flags"),
                    ("FLOAT", "bias1"), ("FLOAT", "bias2"), ("FLOAT", "lr"), ("FLOAT", "grad_scale"),
                    ("FLOAT", "beta1"), ("FLOAT", "beta2"), ("FLOAT", "reg_weight"), ("FLOAT", "damping")),
    defines=_FIXED,
)

LAPLACIAN = KernelSpec(
    name="laplacian",
    sources=_COMMON + ("laplacian.glsl",),
    images=(_img(0, "RGBA32F", "result", ("WRITE",)),),
    samplers=(Sampler(0, "FLOAT_2D", "values"), Sampler(1, "FLOAT_2D", "adjacency_range"),
              Sampler(2, "FLOAT_2D", "adjacency"), Sampler(3, "FLOAT_2D", "rest")),
    push_constants=(("INT", "count_total"), ("INT", "transpose")),
    defines=_FIXED,
)

FIXED_TO_FLOAT = KernelSpec(
    name="fixed_to_float",
    sources=_COMMON + ("fixed_to_float.glsl",),
    images=(_img(0, "R32I", "accumulator", ("READ",)), _img(1, "R32F", "result", ("WRITE",))),
    push_constants=(("INT", "hi_offset"), ("INT", "row0")),
    defines=_FIXED,
)

COPY = KernelSpec(
    name="copy",
    sources=_COMMON + ("copy.glsl",),
    images=(_img(0, "RGBA32F", "source", ("READ",)), _img(1, "RGBA32F", "destination", ("WRITE",))),
    defines=_FIXED,
)

RESIDUAL_TARGET = KernelSpec(
    name="residual_target",
    sources=_COMMON + ("residual_target.glsl",),
    images=(_img(0, "RGBA32F", "running_mean"), _img(1, "RGBA32F", "effective_target", ("WRITE",)),
            _img(2, "R32I", "loss_acc")),
    samplers=(Sampler(0, "FLOAT_2D", "color_plus"), Sampler(1, "FLOAT_2D", "color_minus"),
              Sampler(2, "FLOAT_2D", "target"), Sampler(3, "FLOAT_2D", "uv")),
    push_constants=(("IVEC2", "image_size"), ("INT", "flags"), ("FLOAT", "rate"), ("FLOAT", "share")),
    defines=_FIXED,
)

SCORE = KernelSpec(
    name="score",
    sources=_COMMON + ("score.glsl",),
    images=(_img(0, "RGBA32F", "running_sum"), _img(1, "R32I", "score_acc")),
    samplers=(Sampler(0, "FLOAT_2D", "color"), Sampler(1, "FLOAT_2D", "target")),
    push_constants=(("IVEC2", "image_size"), ("INT", "flags"), ("FLOAT", "weight")),
    defines=_FIXED,
)

# Lit shading (issue 9): shade_lit on arrays (tests), and a lit raster pass.
_LIT = _COMMON + ("lit_shading.glsl",)

LIT_EVAL = KernelSpec(
    name="lit_eval",
    sources=_LIT + ("lit_eval.glsl",),
    images=(_img(0, "RGBA32F", "out_color", ("WRITE",)), _img(1, "RGBA32F", "out_normal", ("WRITE",))),
    samplers=(Sampler(0, "FLOAT_2D", "lights"), Sampler(1, "FLOAT_2D", "in_material"),
              Sampler(2, "FLOAT_2D", "in_normal"), Sampler(3, "FLOAT_2D", "in_position"),
              Sampler(4, "FLOAT_2D", "in_tangent"), Sampler(5, "FLOAT_2D", "in_map")),
    push_constants=(("VEC3", "camera_position"),),
    defines=_FIXED,
)

RASTERIZE_LIT = KernelSpec(
    name="rasterize_lit",
    sources=_LIT,
    vertex_sources=("rasterize_lit_vert.glsl",),
    fragment_sources=("rasterize_lit_frag.glsl",),
    samplers=(Sampler(0, "FLOAT_2D", "lights"), Sampler(1, "FLOAT_2D", "base_color"),
              Sampler(2, "FLOAT_2D", "material"), Sampler(3, "FLOAT_2D", "normal_map")),
    push_constants=(("MAT4", "view_projection"), ("VEC3", "camera_position"),
                    ("FLOAT", "normal_strength")),
    vertex_inputs=((0, "VEC3", "position"), (1, "VEC3", "normal"), (2, "VEC4", "tangent"),
                   (3, "VEC2", "corner_uv")),
    interface=(("smooth", "VEC3", "world_position"), ("smooth", "VEC3", "world_normal"),
               ("smooth", "VEC4", "world_tangent"), ("smooth", "VEC2", "uv")),
    fragment_outputs=((0, "VEC4", "out_color"),),
    defines=_FIXED,
)

# A lit fit's shading frames from the positions it draws (engine/frames.py):
# one invocation per corner, PARAM_WIDTH corners a row.
CORNER_FRAMES = KernelSpec(
    name="corner_frames",
    sources=_COMMON + ("corner_frames.glsl",),
    images=(_img(0, "RGBA32F", "frames", ("WRITE",)),),
    samplers=(Sampler(0, "FLOAT_2D", "positions"), Sampler(1, "FLOAT_2D", "triangles"),
              Sampler(2, "FLOAT_2D", "fan_range"), Sampler(3, "FLOAT_2D", "corner_data"),
              Sampler(4, "FLOAT_2D", "fan"), Sampler(5, "FLOAT_2D", "face_range"),
              Sampler(6, "FLOAT_2D", "face_vertices")),
    push_constants=(("INT", "corner_count"), ("FLOAT", "winding")),
    defines=_FIXED,
)

# A lit fit's per-draw constants, beside RASTERIZE's push constants (which
# they would push past MAX_PUSH_CONSTANT_BYTES): Rasterizer.draw fills them.
LIT_DRAW = UniformBlock(slot=0, type_name="LitDraw", name="lit_draw", members=(
    ("VEC4", "camera"),  # xyz: the view's camera position (world); w: the normal map's strength
    ("VEC4", "eps"),  # x: the material map's perturbation, y: the normal map's (0: not perturbed)
    ("IVEC4", "material_step"),  # x: its perturbation key, y: stratum (-1: all), z: fitted channels (bits)
    ("IVEC4", "normal_step"),  # x: the normal map's perturbation key, y: stratum
))

# R for a lit fit: RASTERIZE's resources and outputs, plus the fixed maps,
# the lights, their shadow maps (SHADOW_DEPTH's atlas) and each corner's shading frame
# (`corner_frames`: CORNER_FRAMES' output, or Blender's frames where the positions stay).
RASTERIZE_LIT_FIT = KernelSpec(
    name="rasterize_lit_fit",
    sources=_COMMON + ("vertex_position.glsl", "shading.glsl", "lit_shadows.glsl", "lit_shading.glsl"),
    vertex_sources=("rasterize_fit_lit_vert.glsl",),
    fragment_sources=("rasterize_fit_lit_frag.glsl", "rasterize_fit_lit_main_frag.glsl"),
    samplers=RASTERIZE.samplers + (Sampler(2, "FLOAT_2D", "lights"), Sampler(3, "FLOAT_2D", "material"),
                                   Sampler(4, "FLOAT_2D", "normal_map"), Sampler(5, "FLOAT_2D", "shadow_atlas"),
                                   Sampler(6, "FLOAT_2D", "corner_frames")),
    push_constants=RASTERIZE.push_constants,
    uniform_block=LIT_DRAW,
    vertex_inputs=RASTERIZE.vertex_inputs,
    interface=RASTERIZE.interface + (("smooth", "VEC3", "world_position"), ("smooth", "VEC3", "world_normal"),
                                     ("smooth", "VEC4", "world_tangent")),
    fragment_outputs=RASTERIZE.fragment_outputs,
    defines=_FIXED,
)

# R+ and R- of a lit fit in one draw, as RASTERIZE_PAIR.
RASTERIZE_LIT_FIT_PAIR = dataclasses.replace(
    RASTERIZE_LIT_FIT, name="rasterize_lit_fit_pair",
    fragment_sources=("rasterize_fit_lit_frag.glsl", "rasterize_fit_lit_pair_frag.glsl"),
    fragment_outputs=RASTERIZE_PAIR.fragment_outputs)

# A lit SART visit's charge render: the lit colour, its gain and base colour (one draw).
RASTERIZE_LIT_FIT_GAIN = dataclasses.replace(
    RASTERIZE_LIT_FIT_PAIR, name="rasterize_lit_fit_gain",
    fragment_sources=("rasterize_fit_lit_frag.glsl", "rasterize_fit_lit_gain_frag.glsl"))

# Shadow maps (issue 24): every shadow slot's tile of one atlas in one draw,
# depth from the positions texture R binds (theta, theta+ or theta-), into a
# render target of the atlas's size (colour: depth, coverage; lit_shadows.glsl).
SHADOW_DEPTH = KernelSpec(
    name="shadow_depth",
    sources=_COMMON + ("vertex_position.glsl",),
    vertex_sources=("shadow_depth_vert.glsl",),
    fragment_sources=("shadow_depth_frag.glsl",),
    samplers=(Sampler(0, "FLOAT_2D", "positions"), Sampler(1, "FLOAT_2D", "lights")),
    push_constants=(("INT", "corners"),),
    vertex_inputs=RASTERIZE.vertex_inputs,
    interface=(("flat", "INT", "shadow_slot"), ("smooth", "VEC3", "world_position"), ("smooth", "VEC2", "uv")),
    fragment_outputs=RASTERIZE.fragment_outputs,
    defines=_FIXED,
)

# The shadow lookup on arrays (tests/test_shadows.py against engine/shadow_reference.py).
SHADOW_EVAL = KernelSpec(
    name="shadow_eval",
    sources=_COMMON + ("lit_shadows.glsl", "shadow_eval.glsl"),
    images=(_img(0, "RGBA32F", "out_visibility", ("WRITE",)),),
    samplers=(Sampler(0, "FLOAT_2D", "lights"), Sampler(1, "FLOAT_2D", "shadow_atlas"),
              Sampler(2, "FLOAT_2D", "in_position"), Sampler(3, "FLOAT_2D", "in_normal")),
    defines={**_FIXED, "LIT_SHADOWS": 1},
)

# The lit fit's R with the shadow lookups compiled in (LIT_SHADOWS), for a
# scene whose lights cast shadows: llvmpipe pays for the lookup's code in every
# fragment, so a scene without them draws the kernels above.
LIT_FIT_SHADOWED = {spec.name: dataclasses.replace(spec, name=spec.name + "_shadowed",
                                                   defines={**spec.defines, "LIT_SHADOWS": 1})
                    for spec in (RASTERIZE_LIT_FIT, RASTERIZE_LIT_FIT_PAIR, RASTERIZE_LIT_FIT_GAIN)}


def lit_fit_kernel(spec: KernelSpec, shadows: bool) -> KernelSpec:
    """`spec` (RASTERIZE_LIT_FIT or its pair or gain variant), with the shadow lookups if `shadows`."""
    return LIT_FIT_SHADOWED[spec.name] if shadows else spec


# Large Steps (Nicolet et al. 2021; Settings.large_steps, Update's LargeSteps):
# the vertex gradient preconditioned by (I + lambda L)^-1 (Jacobi-preconditioned
# Chebyshev iterations), uniform Adam in u = (I + lambda L) x, and the step solved back.
LARGE_STEPS_GATHER = KernelSpec(
    name="large_steps_gather",
    sources=_COMMON + ("large_steps_gather.glsl",),
    images=(_img(0, "R32I", "grad"), _img(1, "R32I", "count"), _img(2, "RGBA32F", "solution", ("WRITE",)),
            _img(3, "RGBA32F", "residual", ("WRITE",)), _img(4, "RGBA32F", "direction", ("WRITE",))),
    samplers=(Sampler(0, "FLOAT_2D", "regularizer_grad"), Sampler(1, "FLOAT_2D", "adjacency_range")),
    push_constants=(("INT", "count_total"), ("FLOAT", "grad_scale"), ("FLOAT", "reg_weight"),
                    ("FLOAT", "inv_centre"), ("FLOAT", "laplacian_weight")),
    defines=_FIXED,
)

LARGE_STEPS_SOLVE = KernelSpec(
    name="large_steps_solve",
    sources=_COMMON + ("large_steps_solve.glsl",),
    images=(_img(0, "RGBA32F", "solution"), _img(1, "RGBA32F", "residual"),
            _img(2, "RGBA32F", "direction_next", ("WRITE",))),
    samplers=(Sampler(0, "FLOAT_2D", "direction"), Sampler(1, "FLOAT_2D", "adjacency_range"),
              Sampler(2, "FLOAT_2D", "adjacency")),
    push_constants=(("INT", "count_total"), ("FLOAT", "laplacian_weight"), ("FLOAT", "keep"),
                    ("FLOAT", "gain")),
    defines=_FIXED,
)

LARGE_STEPS_ADAM = KernelSpec(
    name="large_steps_adam",
    sources=_COMMON + ("large_steps_adam.glsl",),
    images=(_img(0, "RGBA32F", "moment1"), _img(1, "RGBA32F", "moment2"), _img(2, "R32I", "v_max"),
            _img(3, "RGBA32F", "residual", ("WRITE",)), _img(4, "RGBA32F", "direction", ("WRITE",))),
    samplers=(Sampler(0, "FLOAT_2D", "preconditioned"), Sampler(1, "FLOAT_2D", "adjacency_range")),
    push_constants=(("INT", "count_total"), ("INT", "stage"), ("FLOAT", "beta1"), ("FLOAT", "beta2"),
                    ("FLOAT", "bias1"), ("FLOAT", "bias2"), ("FLOAT", "lr"), ("FLOAT", "inv_centre"),
                    ("FLOAT", "laplacian_weight"), ("INT", "uniform_step")),
    defines=_FIXED,
)

ALL_KERNELS = (PERTURB, RASTERIZE, RASTERIZE_PAIR, ACCUMULATE_GRADIENT, ADAM_STEP, LAPLACIAN, FIXED_TO_FLOAT, COPY,
               RESIDUAL_TARGET, SCORE, LIT_EVAL, RASTERIZE_LIT, CORNER_FRAMES, RASTERIZE_LIT_FIT,
               RASTERIZE_LIT_FIT_PAIR, RASTERIZE_LIT_FIT_GAIN, SHADOW_DEPTH, SHADOW_EVAL, LARGE_STEPS_GATHER,
               LARGE_STEPS_SOLVE, LARGE_STEPS_ADAM) + tuple(LIT_FIT_SHADOWED.values()) + tuple(
    ACCUMULATE_GRADIENT_VARIANTS.values())

__all__ = ["KernelSpec", "Image", "Sampler", "UniformBlock", "ALL_KERNELS", "FIXED_SCALE", "MAX_VIEWS_PER_STEP",
           "MAX_IMAGES_PER_KERNEL", "MAX_PUSH_CONSTANT_BYTES", "LIT_DRAW", "push_constant_bytes",
           "max_push_constant_bytes", "ACCUMULATE_GRADIENT_VARIANTS", "accumulate_gradient_kernel",
           "LIT_FIT_SHADOWED", "lit_fit_kernel"] + [
    k.name.upper() for k in ALL_KERNELS
    if not k.name.startswith("accumulate_gradient_") and not k.name.endswith("_shadowed")]
