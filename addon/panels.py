"""The sidebar panel (3D Viewport > Sidebar > SGE)."""
from __future__ import annotations

import math

import bpy

from . import auto_choices, fit_run, operator_runs, properties


def draw_panel(layout, context) -> None:
    """Everything the panel shows; only uses `layout` and `context`."""
    scene = context.scene
    props = properties.get(scene)
    layout.use_property_split = True
    layout.use_property_decorate = False

    col = layout.column(align=True)
    col.prop(props, "source")
    col.prop(props, "cameras")

    box = layout.box()
    box.label(text="Targets", icon="CAMERA_DATA")
    row = box.row(align=True)
    row.prop(props, "camera_count", text="")
    row.operator("sge.add_cameras_around", text="Add Cameras Around", icon="ADD").count = props.camera_count
    box.prop(props, "reference")
    box.operator("sge.capture_targets", icon="RENDER_STILL")
    layout.operator("sge.fit_lod", icon="MOD_DECIM")

    col = layout.column(heading="Optimize")
    col.prop(props, "lit")
    lit, why = properties.lit_now(props, scene)
    if props.lit == "AUTO":  # what Auto chooses, and why (auto_choices.scene_light)
        col.label(text=f"Auto: {'on' if lit else 'off'} ({why})", icon="INFO")
    row = col.row(align=True)
    row.active = lit
    row.prop(props, "optimize_roughness", toggle=True)
    row.prop(props, "optimize_metallic", toggle=True)
    sub = col.row()
    sub.active = lit
    sub.prop(props, "optimize_normal")
    col.prop(props, "optimize_positions")
    sub = col.column(align=True)
    sub.active = props.optimize_positions
    sub.prop(props, "lr_positions", text="Learning Rate (0 = Auto)")
    sub.prop(props, "eps_positions", text="\u03b5 (0 = Auto)")
    sub.prop(props, "smoothness")
    col.prop(props, "optimize_texture")
    sub = col.column(align=True)
    sub.active = props.optimize_texture
    sub.prop(props, "texture_update")
    sub.prop(props, "lr_texture", text="Learning Rate (0 = Auto)")
    sub.prop(props, "eps_texture")

    col = layout.column(align=True)
    col.prop(props, "quality")
    col.prop(props, "steps")
    col.prop(props, "lr_decay")
    col.prop(props, "resolution")
    col.prop(props, "views_per_step")
    col.prop(props, "estimator")
    row = col.row()
    row.active = props.optimize_positions and props.optimize_texture
    row.prop(props, "alternate_groups")
    col.prop(props, "seed")

    driver = operator_runs.active_driver
    if driver is not None:
        progress = driver.progress()
        col = layout.column(align=True)
        col.label(text=f"Step {progress['step']}/{progress['steps']}  "
                       f"{progress['steps_per_s']:.1f} steps/s  ETA {fit_run.format_eta(progress['eta_s'])}",
                  icon="TIME")
        _draw_loss(col, driver.run.loss_history)
        layout.operator("sge.stop", icon="CANCEL")
    else:
        reason = operator_runs.why_not(scene)
        row = layout.row()
        row.scale_y = 1.5
        row.operator("sge.optimize_to_targets", icon="PLAY")
        if reason is not None:
            layout.label(text=reason[0].upper() + reason[1:], icon="ERROR")
        if operator_runs.last_summary is not None:
            s = operator_runs.last_summary
            after = s.get("mean_psnr_after")
            col = layout.column(align=True)
            if after is not None and math.isfinite(after):
                col.label(text=f"Last run: {s['steps']} steps, PSNR {s['mean_psnr_before']:.1f} "
                               f"\u2192 {after:.1f} dB", icon="INFO")
            for line in auto_choices.choice_lines(s.get("choices") or {}):
                col.label(text=line[0].upper() + line[1:])
            _draw_loss(col, operator_runs.last_history)

    row = layout.row(align=True)
    row.prop(props, "overlay", expand=True)
    if props.overlay != "OFF":
        layout.prop(props, "overlay_opacity")


def _draw_loss(layout, history) -> None:
    for line in operator_runs.loss_lines([loss for _, loss in history]):
        layout.label(text=line)


class VIEW3D_PT_sge_optimizer(bpy.types.Panel):
    bl_label = "SGE Optimizer"
    bl_idname = "VIEW3D_PT_sge_optimizer"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "SGE"

    def draw(self, context):
        draw_panel(self.layout, context)


classes = (VIEW3D_PT_sge_optimizer,)
