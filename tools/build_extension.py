"""Build (and strictly validate) the extension zip with Blender's own
packager, the `blender_ext.py` shipped in the bpy wheel.

    python tools/build_extension.py [--output-dir dist] [--blender-ext PATH]

The package is staged in a temporary folder holding exactly what the
extension needs: the manifest, the Python modules that `__init__.py` reaches
through relative imports (the PyOpenGL backend, the tools, the lab and the
tests are not among them), and the GLSL kernels beside them. So
untracked files in the working tree never end up in the zip. Prints the
zip's path.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "blender_manifest.toml"
DATA_SUFFIX = ".glsl"  # the only files besides modules that the package reads (gpu_kernels/)


def blender_scripts_dir() -> Path:
    """`<site-packages>/bpy/<version>/scripts`, found without importing bpy."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the bpy module is not installed in this Python (pip install bpy)")
    bpy_dir = Path(next(iter(spec.submodule_search_locations)))
    versions = sorted(p for p in bpy_dir.iterdir() if (p / "scripts").is_dir() and p.name[:1].isdigit())
    if not versions:
        raise SystemExit(f"no <version>/scripts folder in {bpy_dir}")
    return versions[-1] / "scripts"


def packager_paths(blender_ext: Path | None = None) -> tuple:
    scripts = blender_scripts_dir()
    blender_ext = blender_ext or scripts / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    tags = scripts / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    for path in (blender_ext, tags):
        if not path.is_file():
            raise SystemExit(f"missing {path}")
    return blender_ext, tags


def _module_file(base: Path) -> Path | None:
    """The file of the module or package at `base` (a path without suffix)."""
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def needed_modules(root: Path = ROOT) -> set:
    """The package's Python files that its `__init__.py` reaches through
    relative imports, those inside functions included, with the `__init__.py`
    of every package on the way. An import that resolves to no file is an
    error: the zip would not work."""
    todo, seen = [root / "__init__.py"], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for parent in path.parents:  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            if parent == root or root not in parent.parents:
                break
            todo.append(parent / "__init__.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.ImportFrom) and node.level):
                continue
            base = path.parent
            for _ in range(node.level - 1):
                base = base.parent
            if node.module:
                base = base.joinpath(*node.module.split("."))
                found = _module_file(base)
                if found is None:
                    raise SystemExit(f"{path.relative_to(root)}: 'from {'.' * node.level}{node.module} "
                                     "import' names no module of the package")
                todo.append(found)
            todo.extend(f for f in (_module_file(base / a.name) for a in node.names) if f)  # submodules
    return seen


def stage(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / MANIFEST, dest / MANIFEST)
    modules = needed_modules()
    data = {f for folder in {m.parent for m in modules} for f in folder.glob(f"*{DATA_SUFFIX}")}
    for src in modules | data:
        target = dest / src.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return dest


def _run(cmd: list) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def build(output_dir: Path, blender_ext: Path | None = None) -> Path:
    blender_ext, tags = packager_paths(blender_ext)
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="sge_ext_") as tmp:
        staging = stage(Path(tmp) / "sge_optimizer")
        _run([py, str(blender_ext), "validate", str(staging), "--valid-tags", str(tags)])
        _run([py, str(blender_ext), "build", "--source-dir", str(staging), "--output-dir", str(output_dir),
              "--valid-tags", str(tags)])
    zips = sorted(output_dir.glob("sge_optimizer-*.zip"), key=lambda p: p.stat().st_mtime)
    if not zips:
        raise SystemExit(f"the packager wrote no zip into {output_dir}")
    _run([py, str(blender_ext), "validate", str(zips[-1]), "--valid-tags", str(tags)])
    return zips[-1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    parser.add_argument("--blender-ext", type=Path, default=None,
                        help="blender_ext.py to use (default: the one in the bpy wheel)")
    args = parser.parse_args(argv)
    print(build(args.output_dir, args.blender_ext))
    return 0


if __name__ == "__main__":
    sys.exit(main())
