"""Small numpy-built scenes: a UV sphere, cameras around it, procedural
textures. Used by tests, benchmarks and the Blender-free backend."""
from __future__ import annotations

import time

import numpy as np

from .optimizer import Engine
from .scene import MeshArrays, SceneArrays, Settings, View


def uv_sphere(segments: int = 24, rings: int = 12, radius: float = 1.0) -> MeshArrays:
    """A closed UV sphere as Blender makes one: shared vertices (one per pole,
    the seam welded) and per-corner UVs that jump at the seam."""
    v = np.linspace(0.0, 1.0, rings + 1)
    u = np.linspace(0.0, 1.0, segments + 1)
    uu, vv = np.meshgrid(u, v)
    uvs = np.stack([uu, vv], -1).reshape(-1, 2)
    grid = np.arange((rings + 1) * (segments + 1)).reshape(rings + 1, segments + 1)
    a, b = grid[:-1, :-1].ravel(), grid[:-1, 1:].ravel()
    c, d = grid[1:, :-1].ravel(), grid[1:, 1:].ravel()
    corners = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    # Weld: grid point -> vertex (seam column = first column, poles = one vertex).
    ring, seg = np.divmod(np.arange(grid.size), segments + 1)
    seg = seg % segments
    weld = np.where(ring == 0, 0, np.where(ring == rings, 1 + (rings - 1) * segments,
                                            1 + (ring - 1) * segments + seg))
    tris = weld[corners]
    keep = (tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 0] != tris[:, 2])
    tris, corners = tris[keep], corners[keep]
    theta, phi = u[seg] * 2 * np.pi, v[ring] * np.pi
    grid_pos = np.stack([np.sin(phi) * np.cos(theta), np.sin(phi) * np.sin(theta), -np.cos(phi)], -1)
    pos = np.zeros((weld.max() + 1, 3))
    pos[weld] = grid_pos * radius
    return MeshArrays(pos, tris, uvs[corners])


def ground_and_plate(cells: int = 8, size: float = 2.0, plate: float = 0.8, height: float = 0.6,
                     thickness: float = 0.1) -> MeshArrays:
    """A self-shadowing mesh: a square ground grid (`cells`^2 quads of side
    `size`, at z = 0, facing +z) and a closed box plate above its centre
    (`plate` wide, its top at `height`), which shadows the ground under a high
    light. Faces do not share vertices (flat shading: `flat_frames`)."""
    g = np.linspace(-size / 2, size / 2, cells + 1)
    quads = []
    for j in range(cells):
        for i in range(cells):
            quads.append([(g[i], g[j], 0), (g[i + 1], g[j], 0), (g[i + 1], g[j + 1], 0), (g[i], g[j + 1], 0)])
    h, lo, top = plate / 2, height - thickness, height
    box = [[(-h, -h, top), (h, -h, top), (h, h, top), (-h, h, top)],  # top, +z
           [(-h, h, lo), (h, h, lo), (h, -h, lo), (-h, -h, lo)],  # bottom, -z
           [(-h, -h, lo), (h, -h, lo), (h, -h, top), (-h, -h, top)],  # -y
           [(h, h, lo), (-h, h, lo), (-h, h, top), (h, h, top)],  # +y
           [(h, -h, lo), (h, h, lo), (h, h, top), (h, -h, top)],  # +x
           [(-h, h, lo), (-h, -h, lo), (-h, -h, top), (-h, h, top)]]  # -x
    quads += box
    pos = np.asarray(quads, np.float64).reshape(-1, 3)
    base = 4 * np.arange(len(quads))[:, None]
    tris = np.concatenate([base + [0, 1, 2], base + [0, 2, 3]])
    uv_quad = np.array([(0, 0), (1, 0), (1, 1), (0, 1)], np.float64)
    uvs = np.tile(uv_quad, (len(quads), 1))
    # UVs: the ground's own grid position, the box a strip along u = 0.9..1
    ground_uv = (pos[:, :2] / size + 0.5)
    uvs = np.where(np.arange(len(pos))[:, None] < 4 * cells * cells, ground_uv, 0.9 + 0.1 * uvs)
    return MeshArrays(pos, tris, uvs[tris])


def flat_frames(mesh: MeshArrays):
    """Per-face shading frames (`engine.materials.CornerFrames`): each
    triangle's geometric normal at its corners, a tangent along its first edge."""
    from .materials import CornerFrames

    p = mesh.positions[mesh.triangles].astype(np.float64)
    normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    tangent = p[:, 1] - p[:, 0]
    tangent /= np.linalg.norm(tangent, axis=-1, keepdims=True)
    normals = np.repeat(normal[:, None], 3, 1)
    tangents = np.concatenate([np.repeat(tangent[:, None], 3, 1), np.ones((len(p), 3, 1))], -1)
    return CornerFrames(normals.astype(np.float32), tangents.astype(np.float32))


def camera_up(eye, centre=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """`up`, or +Y when the camera looks along `up`."""
    f = np.asarray(centre, np.float64) - np.asarray(eye, np.float64)
    up = np.asarray(up, np.float64)
    if abs(np.dot(f / np.linalg.norm(f), up)) > 0.999:
        return np.array([0.0, 1.0, 0.0])
    return up


def look_at(eye, centre=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    up = camera_up(eye, centre, up)
    eye, centre = (np.asarray(x, np.float64) for x in (eye, centre))
    f = centre - eye
    f /= np.linalg.norm(f)
    s = np.cross(f, up)
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def sphere_frames(mesh: MeshArrays):
    """The shading frames (`engine.materials.CornerFrames`) of a `uv_sphere`
    centred on the origin: normals radial, tangents along +U (east), the
    bitangent (+V, north) = cross(normal, tangent), sign +1."""
    from .materials import CornerFrames

    normals = mesh.positions[mesh.triangles].astype(np.float64)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    tangents = np.cross([0.0, 0.0, 1.0], normals)
    length = np.linalg.norm(tangents, axis=-1, keepdims=True)
    tangents = np.where(length > 1e-6, tangents / np.maximum(length, 1e-12), [1.0, 0.0, 0.0])  # poles: any
    tangents = np.concatenate([tangents, np.ones(tangents.shape[:-1] + (1,))], -1)
    return CornerFrames(normals.astype(np.float32), tangents.astype(np.float32))


def perspective(fov_x: float, aspect: float, near: float = 0.1, far: float = 100.0) -> np.ndarray:
    fx = 1.0 / np.tan(fov_x / 2)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = fx, fx * aspect
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def fibonacci_sphere(n: int, radius: float) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(1 - z * z)
    phi = i * np.pi * (3 - np.sqrt(5))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1) * radius


def orbit_cameras(n: int, distance: float = 3.5, fov_x: float = 0.8, aspect: float = 1.0) -> list:
    proj = perspective(fov_x, aspect)
    return [(proj @ look_at(eye)).astype(np.float32) for eye in fibonacci_sphere(n, distance)]


def checker_texture(size: int, tiles: int = 4) -> np.ndarray:
    """A colourful procedural texture (h, w, 4) in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size] / size
    r = 0.5 + 0.5 * np.sin(2 * np.pi * x * tiles / 2)
    g = 0.5 + 0.5 * np.cos(2 * np.pi * y * tiles / 2)
    b = ((np.floor(x * tiles) + np.floor(y * tiles)) % 2) * 0.8 + 0.1
    return np.stack([r, g, b, np.ones_like(r)], -1).astype(np.float32)


def flat_texture(size: int, value: float = 0.5) -> np.ndarray:
    """An opaque (size, size, 4) texture of one grey level: a fit's start."""
    tex = np.full((size, size, 4), value, np.float32)
    tex[..., 3] = 1.0
    return tex


def render_targets(backend, mesh: MeshArrays, texture: np.ndarray, cameras, width: int, height: int) -> list:
    """Views whose targets are renders of (mesh, texture) by the same rasterizer."""
    views = [View(f"view{i}", c, np.zeros((height, width, 4), np.float32)) for i, c in enumerate(cameras)]
    engine = Engine(backend, SceneArrays(mesh, texture, views),
                    Settings(optimize_positions=False, optimize_texture=True))
    for i, view in enumerate(views):
        view.target = engine.render(i)["color"]
    return views


def timed_fit(engine, steps: int) -> tuple:
    """(mean PSNR before, after, seconds of the `steps` steps) of a fit driven
    step by step, as the Blender-free tools time it."""
    from .color import mean_psnr

    before = mean_psnr(engine.evaluate())
    engine.backend.finish()
    t0 = time.perf_counter()
    for _ in range(steps):
        engine.step()
    engine.backend.finish()
    seconds = time.perf_counter() - t0
    return before, mean_psnr(engine.evaluate()), seconds
