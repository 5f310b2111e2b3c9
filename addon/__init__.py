"""Everything that knows Blender: properties, panels, operators, scene I/O."""


def register():
    pass


def unregister():
    pass
