"""The lab's scripts start with `import _paths`: it puts tools/ on sys.path
(its `_bootstrap` imports the repository as the package `sge_optimizer`),
and tests/ (the scenes the lab shares with the tests: scenes.py, lit_scene.py)."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _folder in ("tools", "tests"):
    if str(ROOT / _folder) not in sys.path:
        sys.path.insert(1, str(ROOT / _folder))
