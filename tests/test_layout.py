"""The product apart from the lab: the tests import no module of lab/."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_tests_import_no_lab_code():
    lab = {p.stem for p in (ROOT / "lab").rglob("*.py")} | {p.name for p in (ROOT / "lab").iterdir() if p.is_dir()}
    mine = {p.stem for p in (ROOT / "tests").glob("*.py")}
    found = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in lab - mine]
    assert not found, found
