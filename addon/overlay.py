"""Viewport overlay: while looking through a target camera, draw the target,
the optimizer's current render, or |render - target| over the camera frame.

The shader is built from `GPUShaderCreateInfo` (works on OpenGL, Vulkan and
Metal). The draw callback never raises: with no run, no camera view, or any
problem, it draws nothing.
"""
from __future__ import annotations

import time

import bpy
import gpu
import numpy as np
from gpu_extras.batch import batch_for_shader

MODES = {"TARGET": 0, "RENDER": 1, "DIFFERENCE": 2}
DIFFERENCE_GAIN = 4.0

# camera name -> {"target": array, "render": array or None, "version": int}
_views: dict = {}
_encoding = "srgb"
_version = 0
_textures: dict = {}  # (camera, kind) -> (version, GPUTexture)
_shader = None
_handle = None
_last_update = 0.0
_warned = False

_VERTEX = """
void main()
{
  uvInterp = texCoord;
  gl_Position = viewProjectionMatrix * vec4(pos, 0.0, 1.0);
}
"""

_FRAGMENT = """
vec3 to_srgb(vec3 c)
{
  c = max(c, vec3(0.0));
  return mix(c * 12.92, 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055, step(vec3(0.0031308), c));
}

void main()
{
  vec4 t = texture(targetImage, uvInterp);
  vec4 r = texture(renderImage, uvInterp);
  vec4 c;
  if (mode == 0) {
    c = t;
  }
  else if (mode == 1) {
    c = r;
  }
  else {
    c = vec4(min(abs(r.rgb - t.rgb) * gain, vec3(1.0)), 1.0);
  }
  if (linearInput != 0) {
    /* Premultiplied linear -> premultiplied display sRGB. */
    vec3 straight = c.a > 0.0 ? c.rgb / c.a : vec3(0.0);
    c.rgb = to_srgb(straight) * c.a;
  }
  fragColor = c * opacity;
}
"""


def get_shader():
    global _shader
    if _shader is None:
        iface = gpu.types.GPUStageInterfaceInfo("sge_overlay_iface")
        iface.smooth("VEC2", "uvInterp")
        info = gpu.types.GPUShaderCreateInfo()
        info.push_constant("MAT4", "viewProjectionMatrix")
        info.push_constant("INT", "mode")
        info.push_constant("INT", "linearInput")
        info.push_constant("FLOAT", "opacity")
        info.push_constant("FLOAT", "gain")
        info.sampler(0, "FLOAT_2D", "targetImage")
        info.sampler(1, "FLOAT_2D", "renderImage")
        info.vertex_in(0, "VEC2", "pos")
        info.vertex_in(1, "VEC2", "texCoord")
        info.vertex_out(iface)
        info.fragment_out(0, "VEC4", "fragColor")
        info.vertex_source(_VERTEX)
        info.fragment_source(_FRAGMENT)
        _shader = gpu.shader.create_from_info(info)
    return _shader


def make_texture(pixels: np.ndarray):
    pixels = np.ascontiguousarray(pixels, np.float32)
    h, w = pixels.shape[:2]
    buf = gpu.types.Buffer("FLOAT", h * w * 4, pixels.ravel())
    return gpu.types.GPUTexture((w, h), format="RGBA32F", data=buf)


def draw_quad(corners, target_tex, render_tex, mode: str, matrix, linear: bool = False,
              opacity: float = 1.0) -> None:
    """Draw the textured quad; `corners` are 4 points (x, y) in the order
    bottom-left, bottom-right, top-right, top-left."""
    shader = get_shader()
    batch = batch_for_shader(shader, "TRIS",
                             {"pos": [tuple(c) for c in corners],
                              "texCoord": ((0, 0), (1, 0), (1, 1), (0, 1))},
                             indices=((0, 1, 2), (0, 2, 3)))
    shader.bind()
    shader.uniform_float("viewProjectionMatrix", matrix)
    shader.uniform_int("mode", MODES[mode])
    shader.uniform_int("linearInput", int(linear))
    shader.uniform_float("opacity", float(opacity))
    shader.uniform_float("gain", DIFFERENCE_GAIN)
    shader.uniform_sampler("targetImage", target_tex)
    shader.uniform_sampler("renderImage", render_tex if render_tex is not None else target_tex)
    gpu.state.blend_set("ALPHA_PREMULT")
    batch.draw(shader)
    gpu.state.blend_set("NONE")


# Data from the run -------------------------------------------------------------------
def capture_run(run) -> None:
    """Keep every view's target and final render (after a finished run)."""
    global _encoding, _version
    _version += 1
    _encoding = run.inputs.encoding
    _views.clear()
    for view, metrics in zip(run.inputs.arrays.views, run.after):
        _views[view.name] = {"target": view.target, "render": metrics["color"], "version": _version}
    _tag_redraw()


def update_current(run, min_interval_s: float = 0.1) -> None:
    """During a run: re-render the view of the scene camera, if the overlay
    shows renders (throttled)."""
    global _encoding, _version, _last_update
    scene = bpy.context.scene
    props = getattr(scene, "sge_optimizer", None)
    if props is None or props.overlay == "OFF" or scene.camera is None:
        return
    now = time.perf_counter()
    if now - _last_update < min_interval_s:
        return
    names = [v.name for v in run.inputs.arrays.views]
    if scene.camera.name not in names:
        return
    _last_update = now
    _version += 1
    _encoding = run.inputs.encoding
    i = names.index(scene.camera.name)
    render = run.engine.render_color(i, antialias=True) if props.overlay != "TARGET" else None
    _views[scene.camera.name] = {"target": run.inputs.arrays.views[i].target, "render": render,
                                 "version": _version}
    _tag_redraw()


def clear() -> None:
    _views.clear()
    _textures.clear()


def has_data(camera_name: str) -> bool:
    return camera_name in _views


def _tag_redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def _texture(camera: str, kind: str):
    entry = _views[camera]
    pixels = entry[kind]
    if pixels is None:
        return None
    cached = _textures.get((camera, kind))
    if cached is None or cached[0] != entry["version"]:
        cached = (entry["version"], make_texture(pixels))
        _textures[(camera, kind)] = cached
    return cached[1]


def camera_frame(context, scene, camera):
    """The camera frame's corners in region pixels (BL, BR, TR, TL), or None."""
    from bpy_extras.view3d_utils import location_3d_to_region_2d

    tr, br, bl, tl = camera.data.view_frame(scene=scene)
    points = []
    for co in (bl, br, tr, tl):
        p = location_3d_to_region_2d(context.region, context.region_data, camera.matrix_world @ co)
        if p is None:
            return None
        points.append((p.x, p.y))
    return points


def _draw(context) -> None:
    scene = context.scene
    props = getattr(scene, "sge_optimizer", None)
    if props is None or props.overlay == "OFF":
        return
    rv3d = context.region_data
    camera = scene.camera
    if rv3d is None or context.region is None or rv3d.view_perspective != "CAMERA" or camera is None:
        return
    if camera.name not in _views:
        return
    corners = camera_frame(context, scene, camera)
    if corners is None:
        return
    target = _texture(camera.name, "target")
    render = _texture(camera.name, "render")
    mode = props.overlay
    if mode != "TARGET" and render is None:
        return
    matrix = gpu.matrix.get_projection_matrix() @ gpu.matrix.get_model_view_matrix()
    draw_quad(corners, target, render, mode, matrix, linear=(_encoding == "linear"),
              opacity=props.overlay_opacity)


def draw_callback() -> None:
    global _warned
    try:
        _draw(bpy.context)
    except Exception as exc:  # noqa: BLE001 - drawing must never break the viewport
        if not _warned:
            _warned = True
            print(f"SGE Optimizer: overlay disabled after an error: {exc}")


def register_draw_handler() -> None:
    global _handle
    if _handle is None:
        _handle = bpy.types.SpaceView3D.draw_handler_add(draw_callback, (), "WINDOW", "POST_PIXEL")


def unregister_draw_handler() -> None:
    global _handle, _shader
    if _handle is not None:
        bpy.types.SpaceView3D.draw_handler_remove(_handle, "WINDOW")
        _handle = None
    clear()
    _shader = None
