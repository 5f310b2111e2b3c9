"""Everything that knows Blender: properties, panels, operators, scene I/O.

Each UI module lists its classes in `classes`; they are registered in order
(property groups first, panels last) and unregistered in reverse.
"""
from . import image_undo, operator_runs, operators, overlay, panels, properties

_modules = (properties, operators, panels)


def _classes():
    return [cls for module in _modules for cls in module.classes]


def register():
    import bpy

    for cls in _classes():
        bpy.utils.register_class(cls)
    properties.register_properties()
    image_undo.register_handlers()
    operator_runs.register_handlers()
    overlay.register_draw_handler()


def unregister():
    import bpy

    from . import edit_mode

    if operator_runs.active_driver is not None:
        operator_runs.active_driver.abandon("the add-on was disabled")
    operator_runs.unregister_handlers()
    edit_mode.forget_pending()  # a timer left registered can hang the exit
    overlay.unregister_draw_handler()
    image_undo.unregister_handlers()
    properties.unregister_properties()
    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)
