"""Checks of a run's inputs that need them read (`scene_inputs.read_scene`), made
before the run touches anything: refusals (InputError) and warnings."""
from __future__ import annotations

import bpy
import numpy as np

from ..engine.shadows import MAX_SLOTS, casts_shadow
from ..engine.visibility import triangles_in_frame
from . import material_io
from .errors import InputError
from .scene_inputs import SceneInputs, target_background

# float32 positions resolve about 1e-7 of their magnitude; past 1e7 units a
# step is lost to rounding, and Blender stores an infinite coordinate as 3.4e38.
COORDINATE_LIMIT = 1e7
# An object smaller than this fraction of its distance from the origin moves
# by less than float32 can resolve (the default step is 0.2 % of its size).
SMALLEST_RELATIVE_SIZE = 1e-4
# A normal map is warned about when more than this share of its texels decode
# to a length off 1 by more than NORMAL_LENGTH_TOLERANCE, or to z <= 0 (8-bit
# quantization and filtering stay far inside the tolerance).
NORMAL_OFF_UNIT_SHARE = 0.05
NORMAL_LENGTH_TOLERANCE = 0.25
# Points per triangle edge where the UVs are sampled for the texels they reach.
UV_LATTICE_STEPS = 6
UV_SAMPLED_TRIANGLES = 50_000


def check_shared_data(inputs: SceneInputs) -> None:
    """Refuse writing into data that something else shows too."""
    mesh = inputs.obj.data
    users = sorted(o.name for o in bpy.data.objects if o.data == mesh)
    if len(users) > 1:
        names = ", ".join(f"'{n}'" for n in users)
        raise InputError(f"mesh '{mesh.name}' is shared by objects {names}, and the run would move them all: "
                         "make it single-user (Object > Relations > Make Single User > Object & Data, or "
                         "click the user count next to the mesh name in Object Data Properties)")
    for cam in inputs.cameras:
        if target_background(cam).image == inputs.image:
            raise InputError(f"image '{inputs.image.name}' is both the texture being optimized and the target "
                             f"of camera '{cam.name}', which the run would overwrite: give one of them a copy")


def check_extent(inputs: SceneInputs) -> None:
    """Refuse coordinates float32 cannot optimize (huge, or an object far too
    small for its distance from the origin)."""
    positions = inputs.arrays.mesh.positions
    name = inputs.obj.name
    magnitude = np.abs(positions).max(axis=1)
    worst = int(np.argmax(np.nan_to_num(magnitude, nan=np.inf)))
    if not magnitude[worst] <= COORDINATE_LIMIT:
        x, y, z = positions[worst]
        raise InputError(f"vertex {worst} of '{name}' lies at ({x:.3g}, {y:.3g}, {z:.3g}) in the world, beyond "
                         f"±{COORDINATE_LIMIT:.0e} units (an infinite coordinate is stored as 3.4e+38): "
                         "fix or delete it, or scale the object down")
    size = float(np.linalg.norm(positions.max(axis=0) - positions.min(axis=0)))
    if size <= SMALLEST_RELATIVE_SIZE * magnitude[worst]:
        raise InputError(f"'{name}' is {size:.3g} units across but {magnitude[worst]:.3g} units from the world "
                         "origin: its vertices cannot move by such small steps in 32-bit floats; move it nearer "
                         "the origin or scale it up")


def coverage_warnings(inputs: SceneInputs) -> list:
    """Refuse when no target view can see the object, or when a view that sees
    it has a target with no coverage (alpha 0 everywhere: a fit would pull the
    object out of its frame and darken the texture); one warning per view
    that sees none of it (its target pixels cannot be matched)."""
    views = inputs.arrays.views
    blind = [v for v in views if triangles_in_frame(inputs.arrays.mesh, v.view_projection) == 0]
    if len(blind) == len(views):
        raise InputError(f"no target camera sees '{inputs.obj.name}': each looks away from it or has it outside "
                         "its clip range; aim the cameras at it (e.g. Add Cameras Around)")
    empty = [f"camera '{cam.name}' (image '{target_background(cam).image.name}')"
             for cam, view in zip(inputs.cameras, views)
             if view not in blind and not np.any(view.target[..., 3] > 0)]
    if empty:
        which = (f"the target of {empty[0]} is fully transparent (alpha 0 everywhere) though '{inputs.obj.name}' "
                 "is in its view" if len(empty) == 1 else
                 f"the targets of {len(empty)} cameras are fully transparent (alpha 0 everywhere) though "
                 f"'{inputs.obj.name}' is in their view: {', '.join(empty)}")
        raise InputError(f"{which}. A fit would pull the object out of the frame and darken its texture: render "
                         "the targets with the object visible, or, if an image's alpha is not coverage, set its "
                         "Alpha to None (Image Editor > Sidebar > Image), or take the camera out of the collection")
    warnings = []
    for view in blind:
        covered = int(np.count_nonzero(view.target[..., 3] > 0))
        consequence = (f"its {covered} target pixels with alpha > 0 cannot be matched" if covered
                       else "its target is empty too, so it only costs time")
        warnings.append(f"camera '{view.name}' sees none of '{inputs.obj.name}': {consequence}")
    return warnings


def shadow_warnings(inputs: SceneInputs, scene) -> list:
    """What a lit fit's shadows leave out, where the targets have shadows: a
    warning naming the area lights that cast them (not modelled), and a note
    of what the suns', spots' and point lights' shadow maps do not model. None
    where the object casts no shadow in the render (material_io.renders_shadows_of)."""
    lit = inputs.arrays.lit
    if lit is None or not material_io.renders_shadows_of(inputs.obj, scene):
        return []
    casting = [light for light in lit.lighting.lights if light.cast_shadow]
    modelled = [light.name for light in casting if casts_shadow(light)][:MAX_SLOTS]
    unmodelled = [light.name for light in casting if light.name not in modelled and light.power > 0]
    out = []
    if unmodelled:
        which = ", ".join(f"'{n}'" for n in unmodelled)
        lights, casts = ("lights", "cast") if len(unmodelled) > 1 else ("light", "casts")
        out.append(f"{lights} {which} {casts} shadows, which a lit fit does not model for area lights "
                   f"(nor past {MAX_SLOTS} other lights): where '{inputs.obj.name}' shadows itself in "
                   f"the targets, the fitted maps come out dark there; if it does, untick Shadow on the "
                   f"{lights} and render the targets again")
    if modelled:
        which = ", ".join(f"'{n}'" for n in modelled)
        out.append(f"note: the shadows of {which} are modelled (shadow maps, softened by the light's angle or "
                   "radius); contact shadows, ray-traced ambient occlusion and transmission are not")
    return out


def texels_under(corner_uvs: np.ndarray, height: int, width: int) -> np.ndarray:
    """Flat indices of the texels of a (height, width) bottom-up map that the
    triangles' UVs reach (repeat wrapping), found at a lattice of points on
    each triangle (corners, edges, inside): every texel of a triangle no wider
    than a few texels, an even sample of a larger one's. On a mesh of more
    than UV_SAMPLED_TRIANGLES triangles, an evenly strided subset of them."""
    steps = UV_LATTICE_STEPS
    a, b = np.meshgrid(np.arange(steps + 1), np.arange(steps + 1), indexing="ij")
    keep = a + b <= steps
    weights = np.stack([a[keep], b[keep], steps - a[keep] - b[keep]], -1).astype(np.float32) / steps
    stride = max(1, -(-len(corner_uvs) // UV_SAMPLED_TRIANGLES))
    uv = (weights @ np.asarray(corner_uvs[::stride], np.float32)).reshape(-1, 2)  # (T, P, 2)
    uv = uv[np.all(np.isfinite(uv), axis=1)]
    x = np.floor(uv[:, 0] * width).astype(np.int64) % width
    y = np.floor(uv[:, 1] * height).astype(np.int64) % height
    reached = np.zeros(height * width, bool)
    reached[y * width + x] = True
    return np.flatnonzero(reached)


def off_unit_share(stored: np.ndarray, texels: np.ndarray | None = None) -> float:
    """The share of a tangent-space normal map's texels, (h, w, 3) as stored in
    [0, 1] (only the flat indices `texels`, if given), that decode (2 x - 1)
    to a vector far from unit length or pointing into the surface (z <= 0):
    tangent-space normals never do."""
    normals = stored[..., :3].reshape(-1, 3)
    if texels is not None:
        normals = normals[texels]
    normals = normals.astype(np.float64) * 2.0 - 1.0
    length = np.linalg.norm(normals, axis=-1)
    bad = (np.abs(length - 1.0) > NORMAL_LENGTH_TOLERANCE) | (normals[:, 2] <= 0.0)
    return float(np.mean(bad)) if len(bad) else 0.0


def normal_map_warnings(inputs: SceneInputs) -> list:
    """A lit fit's normal map whose texels under the mesh's UVs are mostly not
    unit tangent-space normals (a black image, say) is read and fitted, with
    one warning. Texels no UV reaches (left black by a bake) do not count."""
    material = inputs.lit_material
    normal = material.normal if material is not None else None
    if normal is None:
        return []
    height, width = normal.image.shape[:2]
    share = off_unit_share(normal.image, texels_under(inputs.arrays.mesh.corner_uvs, height, width))
    if share <= NORMAL_OFF_UNIT_SHARE:
        return []
    return [f"normal map '{normal.image_name}': {share:.0%} of the texels the mesh uses decode to vectors far "
            "from unit length or pointing into the surface, which tangent-space normals never do; the image "
            "may have been regenerated blank (setting Non-Color on a generated image after writing its pixels "
            "regenerates it black): set Non-Color first, then write the pixels, or load the intended image"]


def check(inputs: SceneInputs, scene=None) -> list:
    """Every check above; returns the warnings."""
    check_shared_data(inputs)
    check_extent(inputs)
    return (coverage_warnings(inputs) + shadow_warnings(inputs, scene or bpy.context.scene)
            + normal_map_warnings(inputs))
