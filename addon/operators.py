"""Operators: thin wrappers over the plain functions in `operator_runs`, `api` and
`target_setup`, which scripts can call directly."""
from __future__ import annotations

import sys

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty

from . import api, fit_run, lod, operator_runs, properties, scene_inputs, target_setup
from .errors import InputError


def _print_progress(progress: dict) -> None:
    print(f"SGE Optimizer: {fit_run.progress_text(progress)}", file=sys.stderr, flush=True)


class SGE_OT_optimize_to_targets(bpy.types.Operator):
    """Optimize the source mesh (positions and/or base colour) so its renders match the target cameras' background images"""

    bl_idname = "sge.optimize_to_targets"
    bl_label = "Optimize to Targets"
    bl_options = {"REGISTER", "UNDO"}

    tick_budget: bpy.props.FloatProperty(
        name="Tick Budget", default=0.03, min=0.001, max=1.0, options={"HIDDEN", "SKIP_SAVE"},
        description="Seconds of optimization per timer tick in the interactive run")

    _driver = None
    _timer = None

    @classmethod
    def poll(cls, context):
        reason = operator_runs.why_not(context.scene)
        if reason is not None:
            cls.poll_message_set(reason[0].upper() + reason[1:])
            return False
        return True

    def execute(self, context):
        # Without a UI (bpy.app.background) nothing else shows that a long run is alive.
        progress = _print_progress if bpy.app.background else None
        try:
            summary = operator_runs.run_blocking(context.scene, progress)
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except Exception as exc:  # noqa: BLE001 - the scene was restored; tell the user
            self.report({"ERROR"}, f"SGE Optimizer failed (scene restored): {type(exc).__name__}: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, operator_runs.report_line(summary))
        for warning in summary["warnings"]:
            self.report({"WARNING"}, warning)
        return {"FINISHED"}

    def invoke(self, context, event):
        if context.window is None or bpy.app.background:
            return self.execute(context)
        try:
            run = operator_runs.make_run(context.scene)
            driver = operator_runs.ModalDriver(run, budget_s=self.tick_budget)
            driver.start()
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, f"SGE Optimizer could not start: {type(exc).__name__}: {exc}")
            return {"CANCELLED"}
        for warning in run.warnings:
            self.report({"WARNING"}, warning)
        self._driver = driver
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.001, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, max(run.settings.steps, 1))
        context.workspace.status_text_set(operator_runs.status_line(driver.progress()))
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        driver = self._driver
        state = operator_runs.modal_event(driver, event.type, event.value)
        if state is None:
            return {"PASS_THROUGH"}
        if state == operator_runs.RUNNING:
            progress = driver.progress()
            context.window_manager.progress_update(progress["step"])
            context.workspace.status_text_set(operator_runs.status_line(progress))
            for area in context.screen.areas:
                if area.type in {"VIEW_3D", "IMAGE_EDITOR"}:
                    area.tag_redraw()
            return {"RUNNING_MODAL"}
        self._cleanup(context)
        if state == operator_runs.FINISHED:
            self.report({"INFO"}, operator_runs.report_line(driver.summary))
            return {"FINISHED"}
        self.report({"ERROR"}, f"SGE Optimizer stopped: {driver.error}")  # says what was restored
        return {"CANCELLED"}

    def cancel(self, context):
        """Blender ends the modal handler (another file opened, window closed)."""
        if self._driver is not None:
            self._driver.abandon("the optimization was cancelled")
        self._cleanup(context)

    def _cleanup(self, context):
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if context.workspace is not None:  # None while a file is being replaced
            context.workspace.status_text_set(None)
        for area in context.screen.areas if context.screen is not None else ():
            area.tag_redraw()


class SGE_OT_stop(bpy.types.Operator):
    """Stop the running optimization and keep its result so far"""

    bl_idname = "sge.stop"
    bl_label = "Stop"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return operator_runs.active_driver is not None

    def execute(self, context):
        operator_runs.active_driver.request_stop()
        return {"FINISHED"}


class SGE_OT_add_cameras_around(bpy.types.Operator):
    """Add cameras on a sphere around the object, each framing it, in a new collection set as the target cameras"""

    bl_idname = "sge.add_cameras_around"
    bl_label = "Add Cameras Around"
    bl_options = {"REGISTER", "UNDO"}

    count: IntProperty(name="Cameras", default=12, min=1, max=64)

    @staticmethod
    def _subject(context):
        props = properties.get(context.scene)
        obj = props.reference or context.active_object or props.source
        return obj if obj is not None and obj.type == "MESH" else None

    @classmethod
    def poll(cls, context):
        if cls._subject(context) is None:
            cls.poll_message_set("Select a mesh object (or set the Reference) to frame")
            return False
        return True

    def invoke(self, context, event):
        self.count = properties.get(context.scene).camera_count
        return self.execute(context)

    def execute(self, context):
        obj = self._subject(context)
        collection = target_setup.add_cameras_around(obj, self.count, "SGE Cameras", scene=context.scene)
        props = properties.get(context.scene)
        props.cameras = collection
        if context.scene.camera is None:
            context.scene.camera = sorted(collection.objects, key=lambda o: o.name)[0]
        self.report({"INFO"}, f"Added {self.count} cameras in '{collection.name}' around '{obj.name}'")
        return {"FINISHED"}


class SGE_OT_capture_targets(bpy.types.Operator):
    """Render the reference object from every target camera into the camera's background image (the targets)"""

    bl_idname = "sge.capture_targets"
    bl_label = "Capture Targets from Reference"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        props = properties.get(context.scene)
        if props.reference is None:
            cls.poll_message_set("Pick a Reference object to capture")
            return False
        if props.cameras is None:
            cls.poll_message_set("Pick the Target Cameras collection")
            return False
        return True

    def execute(self, context):
        props = properties.get(context.scene)
        hide = [props.source] if props.source is not None and props.source != props.reference else []
        try:
            cameras = scene_inputs.collection_cameras(props.cameras)
            images = target_setup.capture_targets(props.reference, cameras, scene=context.scene, hide=hide)
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Captured {len(images)} targets from '{props.reference.name}'")
        return {"FINISHED"}


class SGE_OT_fit_lod(bpy.types.Operator):
    """Make a decimated copy of the active mesh with a fresh UV unwrap and new base-colour, normal and roughness maps baked from it, then fit the copy to renders of the original under the scene's lights"""

    bl_idname = "sge.fit_lod"
    bl_label = "Fit LOD to Reference"
    bl_options = {"REGISTER", "UNDO"}

    ratio: FloatProperty(name="Ratio", description="Fraction of the triangles kept", default=0.1,
                         min=0.001, max=1.0, subtype="FACTOR")
    triangles: IntProperty(name="Triangle Budget", description="At most this many triangles (0: the ratio decides)",
                           default=0, min=0)
    texture_size: IntProperty(name="Texture Size", default=512, min=16, max=8192)
    target_views: IntProperty(name="Target Views", default=16, min=1, max=64)
    held_out_views: IntProperty(name="Held-out Views", description="Cameras that judge the result only",
                                default=6, min=0, max=64)
    render_engine: EnumProperty(name="Targets Rendered by", items=(("EEVEE", "EEVEE", ""), ("CYCLES", "Cycles", "")),
                                default="EEVEE")
    resolution: IntProperty(name="Resolution", description="Targets and scoring renders, longest side",
                            default=256, min=16, max=4096)
    steps: IntProperty(name="Steps", description="Fit steps; 0: the Standard preset's", default=0, min=0)
    fit_positions: BoolProperty(name="Move Vertices", default=True,
                                description="Fit the copy's vertices with its maps (a joint lit fit); off: the "
                                            "decimated vertices stay and only the maps are fitted")

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        if obj is None or obj.type != "MESH":
            cls.poll_message_set("Select the high-poly mesh to make an LOD of")
            return False
        return True

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        options = lod.LodOptions(ratio=self.ratio, triangles=self.triangles, texture_size=self.texture_size,
                                 target_views=self.target_views, held_out_views=self.held_out_views,
                                 render_engine=self.render_engine,
                                 resolution=self.resolution, steps=self.steps or None,
                                 fit_positions=self.fit_positions)
        if self.options.is_invoke and not bpy.app.background and context.window is not None:
            return self._start_modal(context, options)
        # Scripts and background mode: blocking.
        try:
            summary = api.fit_lod(context.active_object, options, scene=context.scene,
                                  progress=lambda text: print(f"SGE Optimizer LOD: {text}", file=sys.stderr,
                                                              flush=True))
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._report_lod(summary)
        return {"FINISHED"}

    def _report_lod(self, summary):
        for warning in summary["warnings"]:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, lod.summary_text(summary))

    # From the dialog: a unit of work per timer tick (a bake or a render
    # blocks for its own length; the fit runs in slices), Esc stops.
    def _start_modal(self, context, options):
        self._driver = operator_runs.LodDriver(context.active_object, options, context.scene)
        try:
            self._driver.start()
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.01, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        driver = self._driver
        if driver.on_event(event.type, event.value) is None:
            return {"PASS_THROUGH"}
        if driver.state == operator_runs.RUNNING:
            context.workspace.status_text_set(f"SGE Fit LOD to Reference: {driver.message}  (Esc: stop)")
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        if driver.state == operator_runs.FINISHED:
            self._report_lod(driver.summary)
            return {"FINISHED"}
        self.report({"WARNING"}, f"Fit LOD to Reference: {driver.error}")
        return {"CANCELLED"}


classes = (SGE_OT_optimize_to_targets, SGE_OT_stop, SGE_OT_add_cameras_around, SGE_OT_capture_targets,
           SGE_OT_fit_lod)
