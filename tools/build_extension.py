"""Build (and strictly validate) the extension zip with Blender's own
packager, the `blender_ext.py` shipped in the bpy wheel.

    python tools/build_extension.py [--output-dir dist] [--blender-ext PATH]

The package is staged in a temporary folder holding exactly what the
extension needs (the manifest, `__init__.py`, `addon/`, `engine/`,
`gpu_kernels/`), so untracked files in the working tree never end up in the
zip. Prints the zip's path.
"""
from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_PATHS = ("blender_manifest.toml", "__init__.py", "addon", "engine", "gpu_kernels")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


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


def stage(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in PACKAGE_PATHS:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=IGNORE)
        else:
            shutil.copy2(src, dest / name)
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
