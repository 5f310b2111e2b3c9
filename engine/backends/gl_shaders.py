"""GLSL 4.50 source of the `gpu_kernels` specs, for the PyOpenGL backend.

The bodies are the specs' own GLSL, as in Blender; only the declarations that
Blender's `GPUShaderCreateInfo` would generate are generated here
(`glsl_declarations`). Plain text: needs neither OpenGL nor `bpy`.
"""
from __future__ import annotations

# GLSL type names of the spec's type names (Blender's create-info names).
_GLSL_TYPES = {
    "FLOAT": "float", "VEC2": "vec2", "VEC3": "vec3", "VEC4": "vec4",
    "MAT3": "mat3", "MAT4": "mat4", "INT": "int", "IVEC2": "ivec2", "IVEC3": "ivec3",
    "IVEC4": "ivec4", "UINT": "uint", "UVEC2": "uvec2", "UVEC3": "uvec3", "UVEC4": "uvec4",
    "BOOL": "bool",
}
_SAMPLER_TYPES = {"FLOAT_2D": "sampler2D", "INT_2D": "isampler2D", "UINT_2D": "usampler2D"}
_IMAGE_TYPES = {"FLOAT_2D": "image2D", "INT_2D": "iimage2D", "UINT_2D": "uimage2D"}
_INTERPOLATION = {"flat": "flat", "smooth": "smooth", "no_perspective": "noperspective"}
GLSL_VERSION = "#version 450 core\n"


def image_access(image) -> str:
    """'readonly', 'writeonly' or '' (both) from an image's qualifiers."""
    return {frozenset({"READ"}): "readonly", frozenset({"WRITE"}): "writeonly"}.get(
        frozenset(image.qualifiers), "")


def _qualifier(image) -> str:
    access = image_access(image)
    return access + " " if access else ""


def glsl_declarations(spec, stage: str) -> str:
    """The declarations Blender's create-info generates, as GLSL 4.50 text.

    stage: 'compute', 'vertex' or 'fragment'. The defines are not repeated
    here: `spec.*_source()` starts with them.
    """
    if stage not in ("compute", "vertex", "fragment"):
        raise ValueError(f"unknown stage {stage!r}")
    if (stage == "compute") != spec.is_compute:
        raise ValueError(f"kernel {spec.name} has no {stage} stage")
    lines = []
    if stage == "compute":
        x, y, z = spec.local_size
        lines.append(f"layout(local_size_x = {x}, local_size_y = {y}, local_size_z = {z}) in;")
    for image in spec.images:
        lines.append(f"layout(binding = {image.slot}, {image.format.lower()}) {_qualifier(image)}"
                     f"uniform {_IMAGE_TYPES[image.type]} {image.name};")
    for sampler in spec.samplers:
        lines.append(f"layout(binding = {sampler.slot}) uniform "
                     f"{_SAMPLER_TYPES[sampler.type]} {sampler.name};")
    for kind, name in spec.push_constants:
        lines.append(f"uniform {_GLSL_TYPES[kind]} {name};")
    block = spec.uniform_block
    if block is not None:  # as Blender's uniform_buf: the struct, then a block holding one instance
        lines.append(block.struct_source().rstrip("\n"))
        lines.append(f"layout(std140, binding = {block.slot}) uniform _{block.name} "
                     f"{{ {block.type_name} {block.name}; }};")
    if stage == "vertex":
        for slot, kind, name in spec.vertex_inputs:
            lines.append(f"layout(location = {slot}) in {_GLSL_TYPES[kind]} {name};")
    for qualifier, kind, name in spec.interface if stage != "compute" else ():
        direction = "out" if stage == "vertex" else "in"
        lines.append(f"{_INTERPOLATION[qualifier]} {direction} {_GLSL_TYPES[kind]} {name};")
    if stage == "fragment":
        for slot, kind, name in spec.fragment_outputs:
            lines.append(f"layout(location = {slot}) out {_GLSL_TYPES[kind]} {name};")
    return "\n".join(lines) + "\n"


def glsl_source(spec, stage: str) -> str:
    """A complete shader: version, declarations, then the spec's body."""
    body = {"compute": spec.compute_source, "vertex": spec.vertex_source,
            "fragment": spec.fragment_source}[stage]()
    return GLSL_VERSION + glsl_declarations(spec, stage) + "#line 1\n" + body
