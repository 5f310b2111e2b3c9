"""Lit by the Scene and the normal map on auto (issue 24, points 4 and 1):
what a run with no flags decides from the scene, and the reason it gives
(addon/auto_choices.py)."""
from __future__ import annotations

import json

import bpy
import numpy as np
import pytest
from test_lit_fit import _lit_blender_scene, add_normal_map, bumpy_normal_map, flat_normal_map
from test_operator import registered  # noqa: F401 - the panel's properties
from test_optimize_cli import TOOLS, run_tool

from sge_optimizer.addon import auto_choices, operator_runs, properties
from sge_optimizer.addon.api import OptimizationRun
from sge_optimizer.addon.auto_choices import Choices
from sge_optimizer.addon.errors import InputError
from sge_optimizer.addon.lod import eevee_id
from sge_optimizer.engine import QUALITY_PRESETS, Settings

STANDARD = QUALITY_PRESETS["standard"]


def lit_scene(engine: str | None = None, **light):
    """The demo's source and cameras under a sun and a grey world (Standard
    view transform), rendered by EEVEE unless `engine` says otherwise."""
    source, cameras, sun = _lit_blender_scene(**light)
    bpy.context.scene.render.engine = engine or eevee_id()
    return source, cameras, sun


def default_run(source, cameras, **choices) -> OptimizationRun:
    """A run as the panel's and the CLI's defaults make it: a joint fit at
    the Standard preset's steps, lit and normal map on auto."""
    return OptimizationRun(source, cameras, Settings(), resolution=32,
                           choices=Choices(**{"steps_preset": "standard", **choices}))


def is_the_unlit_joint_fit(run) -> bool:
    """The default run as before auto: unlit, positions and base colour, the joint fit's steps."""
    s = run.settings
    return run.inputs.arrays.lit is None and (s.lit, s.optimize_positions, s.optimize_texture, s.optimize_normal,
                                              s.steps) == (False, True, True, False, STANDARD["joint_steps"])


def test_auto_is_lit_for_eevee_with_a_light_and_moves_the_mesh(backend, empty_scene):
    """EEVEE, a sun and a grey world: the default (joint) run is a lit joint
    fit of the vertices and the base colour, with the joint fit's steps."""
    source, cameras, _ = lit_scene()
    run = default_run(source, cameras)
    s, lit = run.settings, run.choices["lit"]
    assert run.inputs.arrays.lit is not None
    assert (s.lit, s.optimize_positions, s.optimize_texture) == (True, True, True)
    assert s.steps == STANDARD["joint_steps"]
    assert (lit.mode, lit.on) == ("auto", True)
    assert lit.reason == "EEVEE, 1 light, world colour"
    assert run.choices["fit_normal"].on is False  # the material has no normal map
    line = auto_choices.choice_lines(run.choices)[0]
    assert line == "lit: auto \u2192 on (EEVEE, 1 light, world colour)"


def test_auto_is_unlit_for_workbench_and_a_dark_scene(backend, empty_scene):
    source, cameras, sun = lit_scene("BLENDER_WORKBENCH")
    run = default_run(source, cameras)
    assert is_the_unlit_joint_fit(run)  # as before
    assert (run.choices["lit"].on, run.choices["lit"].reason) == (False, "Workbench renders unlit")

    bpy.context.scene.render.engine = eevee_id()
    sun.data.energy = 0.0
    background = next(n for n in bpy.context.scene.world.node_tree.nodes if n.type == "BACKGROUND")
    background.inputs["Color"].default_value = (0.0, 0.0, 0.0, 1.0)
    run = default_run(source, cameras)
    assert is_the_unlit_joint_fit(run)
    assert (run.choices["lit"].on, run.choices["lit"].reason) == (False, "EEVEE, no light, black world")
    bpy.context.scene.world = None  # no world at all is black too
    assert default_run(source, cameras).choices["lit"].reason == "EEVEE, no light, black world"
    sun.data.energy = 2.0  # a light alone lights it
    assert default_run(source, cameras).choices["lit"].reason.startswith("EEVEE, 1 light, black world")


def test_auto_falls_back_to_unlit_where_the_lit_fit_refuses_the_scene(backend, empty_scene):
    """A lit scene that the lit fit refuses (here: the AgX view transform,
    Blender's default) runs unlit on auto, saying why; "on" refuses it."""
    source, cameras, _ = lit_scene()
    bpy.context.scene.view_settings.view_transform = "AgX"
    run = default_run(source, cameras)
    lit = run.choices["lit"]
    assert is_the_unlit_joint_fit(run) and not lit.on
    assert lit.reason.startswith("EEVEE, 1 light, world colour, but the scene's View Transform is AgX")
    with pytest.raises(InputError, match="View Transform"):
        OptimizationRun(source, cameras, Settings(optimize_positions=False), resolution=32, choices=Choices(lit="on"))
    with pytest.raises(InputError, match="View Transform"):
        default_run(source, cameras, lit="on")


def test_a_lit_positions_fit_and_custom_normals(backend, empty_scene):
    """A positions-only fit on a lit scene is a lit one. Custom split normals
    cannot follow moved vertices: "on" refuses them by name, auto falls back
    to the unlit fit and says why."""
    source, cameras, _ = lit_scene()
    run = OptimizationRun(source, cameras, Settings(optimize_texture=False), resolution=32, choices=Choices())
    assert run.settings.lit and run.settings.optimize_positions and not run.settings.optimize_texture
    source.data.normals_split_custom_set_from_vertices([(0.0, 0.0, 1.0)] * len(source.data.vertices))
    assert source.data.has_custom_normals
    with pytest.raises(InputError, match=f"mesh '{source.data.name}' has custom split normals"):
        default_run(source, cameras, lit="on")
    run = default_run(source, cameras)
    assert is_the_unlit_joint_fit(run)
    assert "custom split normals" in run.choices["lit"].reason


def test_explicit_choices_and_a_map_that_needs_lit(backend, empty_scene):
    """on / off are kept whatever the scene; a map that needs a lit fit says
    why auto left it unlit."""
    source, cameras, _ = lit_scene()
    off = default_run(source, cameras, lit="off")
    assert not off.settings.lit and off.settings.optimize_positions and off.choices["lit"].text("lit") == "lit: off"
    bpy.context.scene.render.engine = "BLENDER_WORKBENCH"
    with pytest.raises(InputError, match="lit fit only.*lit: auto \u2192 off \\(Workbench renders unlit\\)"):
        OptimizationRun(source, cameras, Settings(optimize_roughness=True), resolution=32, choices=Choices())


def test_auto_fits_the_normal_map_of_a_lit_fit(backend, empty_scene):
    """A material with a tangent-space normal-map image: the lit fit fits it
    on auto (and says so); off keeps it fixed; an unlit fit leaves it."""
    source, cameras, _ = lit_scene()
    add_normal_map(source, flat_normal_map(16))
    run = default_run(source, cameras)
    normal = run.choices["fit_normal"]
    assert run.settings.optimize_normal and normal.on and normal.reason == "the material's normal map 'Source Normal'"
    assert "NormalMapImage" in [type(p).__name__ for p in run.params]  # written back
    assert not default_run(source, cameras, fit_normal="off").settings.optimize_normal
    bpy.context.scene.render.engine = "BLENDER_WORKBENCH"
    unlit = default_run(source, cameras)
    assert not unlit.settings.optimize_normal and unlit.choices["fit_normal"].reason == "an unlit fit"
    assert auto_choices.choice_lines(unlit.choices) == ["lit: auto \u2192 off (Workbench renders unlit)"]


def test_a_default_lit_run_fits_the_normal_map_and_reports_both(registered, empty_scene):  # noqa: F811
    """Through the panel's defaults: the lit fit of the base colour and the
    normal map runs, and the report line says what auto chose and why."""
    source, cameras, _ = lit_scene()
    image = add_normal_map(source, bumpy_normal_map(16, tilt=0.3))
    before = np.array(image.pixels[:])
    props = properties.get(bpy.context.scene)
    props.source, props.cameras, props.resolution = source, cameras, 32
    assert (props.lit, props.optimize_normal) == ("AUTO", "AUTO")
    assert properties.lit_now(props, bpy.context.scene) == (True, "EEVEE, 1 light, world colour")
    summary = operator_runs.run_blocking(bpy.context.scene, steps=4)
    assert summary["settings"]["lit"] and summary["settings"]["optimize_normal"]
    assert summary["settings"]["optimize_positions"]  # a lit joint fit: the normals follow the vertices
    assert summary["choices"]["lit"]["on"] and summary["choices"]["fit_normal"]["on"]
    assert not np.array_equal(np.array(image.pixels[:]), before)
    line = operator_runs.report_line(summary)
    assert "lit: auto \u2192 on (EEVEE, 1 light, world colour)" in line
    assert "normal map: auto \u2192 on (the material's normal map 'Source Normal')" in line


def test_a_lit_run_without_a_normal_map_still_runs(registered, empty_scene):  # noqa: F811
    source, cameras, _ = lit_scene()
    props = properties.get(bpy.context.scene)
    props.source, props.cameras, props.resolution = source, cameras, 32
    summary = operator_runs.run_blocking(bpy.context.scene, steps=3)
    assert summary["settings"]["lit"] and not summary["settings"]["optimize_normal"]
    assert "normal map: auto \u2192 off (the material has no normal map)" in operator_runs.report_line(summary)


def test_the_cli_with_no_flags_fits_a_lit_scene_lit(backend, empty_scene, tmp_path):
    """tools/optimize.py on a lit EEVEE scene, no --lit: the lit fit, and the
    reason on stderr and in the summary."""
    lit_scene()
    path = tmp_path / "lit.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    out = tmp_path / "summary.json"
    result = run_tool(TOOLS / "optimize.py", path, "--object", "Source", "--cameras", "Targets", "--steps", "2",
                      "--resolution", "32", "--summary", out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lit: auto \u2192 on (EEVEE, 1 light, world colour)" in result.stderr
    summary = json.loads(out.read_text())
    assert summary["settings"]["lit"] and summary["choices"]["lit"]["mode"] == "auto"
    assert "Push constants" not in result.stdout + result.stderr  # quiet (issue 24, point 5)
