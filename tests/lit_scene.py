"""Lit scenes as Blender's own engines render them, set up so the lit model
(gpu_kernels/lit_shading.glsl) can match them: EEVEE or Cycles, lights with
shadows off, a uniform world colour, the Standard view transform.

Shared by lab/lit_ceiling.py (the model against EEVEE/Cycles with the true
maps) and tests/scenes.py (lit fits judged on held-out views, by the tests and
lab/evaluate.py).
"""
from __future__ import annotations

import bpy
from mathutils import Vector

# What the lit model needs from EEVEE: no shadows (not modelled yet), and a low
# light threshold, so that a light's influence radius (sqrt(power / 100 /
# threshold)) does not fade it at the object (at 0.01, a 400 W point light
# fades ~5% at 4 m); no ray tracing or fast GI (no indirect light in the model).
EEVEE_SETTINGS = {"taa_render_samples": 16, "use_shadows": False, "light_threshold": 1e-5,
                  "use_raytracing": False, "use_fast_gi": False}

# Cycles: CPU, no denoiser, direct light + world only (no bounces: we have no
# indirect light), a small adaptive-sampling threshold; filter_size default (1.5 px).
CYCLES_SETTINGS = {"device": "CPU", "use_denoising": False, "use_adaptive_sampling": True,
                   "adaptive_threshold": 0.002, "max_bounces": 0, "diffuse_bounces": 0,
                   "glossy_bounces": 0, "transmission_bounces": 0, "volume_bounces": 0,
                   "transparent_max_bounces": 0, "caustics_reflective": False,
                   "caustics_refractive": False, "sample_clamp_direct": 0.0,
                   "sample_clamp_indirect": 0.0, "seed": 0}


def eevee_engine_id() -> str:
    """'BLENDER_EEVEE' on 5.x, 'BLENDER_EEVEE_NEXT' on 4.2-4.5."""
    from sge_optimizer.addon.lod import eevee_id

    return eevee_id()


def look_rotation(direction):
    return Vector(direction).to_track_quat("-Z", "Y").to_euler()


def add_light(scene, kind: str, name: str, location, rotation, shadow: bool = False, **props):
    """A light object that casts no shadow, in EEVEE (use_shadow) or Cycles
    (no shadow rays), unless `shadow` (the lit model's shadow maps)."""
    data = bpy.data.lights.new(name, kind)
    for key, value in props.items():
        setattr(data, key, value)
    data.use_shadow = shadow
    ob = bpy.data.objects.new(name, data)
    ob.visible_shadow = shadow
    ob.location = location
    ob.rotation_euler = rotation
    scene.collection.objects.link(ob)
    return ob


def set_world(scene, colour, strength: float = 1.0):
    """A uniform world: a Background node of `colour` × `strength`."""
    world = bpy.data.worlds.new("world")
    if bpy.app.version < (5, 0, 0):
        world.use_nodes = True  # always on (and deprecated) since 5.0
    background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    background.inputs["Color"].default_value = (*colour, 1.0)
    background.inputs["Strength"].default_value = strength
    scene.world = world
    return world


def setup_engine(scene, engine: str, cycles_samples: int = 1024, cycles_seed: int = 0,
                 shadows: bool = False) -> None:
    """`engine` 'eevee' or 'cycles' with the settings above (EEVEE's shadows
    on if `shadows`), the Standard view transform (no tone mapping) and a
    transparent film (alpha is coverage)."""
    r = scene.render
    r.engine = eevee_engine_id()
    for key, value in {**EEVEE_SETTINGS, "use_shadows": shadows}.items():
        if hasattr(scene.eevee, key):
            setattr(scene.eevee, key, value)
    if engine == "cycles":
        r.engine = "CYCLES"
        for key, value in CYCLES_SETTINGS.items():
            setattr(scene.cycles, key, value)
        scene.cycles.samples = cycles_samples
        scene.cycles.seed = cycles_seed
        r.threads_mode = "AUTO"
    elif engine != "eevee":
        raise ValueError(f"engine must be 'eevee' or 'cycles', got {engine!r}")
    r.film_transparent = True
    view = scene.view_settings
    view.view_transform = "Standard"
    view.look = "None"
    view.exposure = 0.0
    view.gamma = 1.0


def unshadowed(obj) -> None:
    """Cycles: `obj` occludes no light or world ray (the lit model has no
    shadows or occlusion; a torus would shade its own inner ring)."""
    obj.visible_shadow = False
    obj.visible_diffuse = False
    obj.visible_glossy = False
