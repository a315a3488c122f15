"""The house rules a newcomer relies on, read from the source as test_imports.py reads imports:
settings travel as small objects, not as long parameter lists (no public function of the
product takes more than 8 parameters; self, *args/**kwargs and dataclass constructors not
counted), and the CLI parses and prints (its stage work lives in the library, where a test or a
notebook calls it without a subprocess)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mobileprune"
MOST = 8


def _too_long(package: Path) -> dict[str, int]:
    found = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                a = node.args
                named = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
                if len(named) > MOST:
                    found[f"{path.relative_to(package).as_posix()}:{node.name}"] = len(named)
    return found


def test_no_public_function_takes_more_than_eight_parameters():
    assert _too_long(PACKAGE) == {}


def test_the_count_sees_keyword_only_parameters(tmp_path):
    (tmp_path / "m.py").write_text("def f(a, b, *, c, d, e, f, g, h, i, **kw):\n    pass\n\n"
                                   "def _g(a, b, c, d, e, f, g, h, i):\n    pass\n\n"
                                   "class C:\n    def m(self, a, b, c, d, e, f, g, h):\n        pass\n")
    assert _too_long(tmp_path) == {"m.py:f": 9}


# What only a stage may do: set up torch.distributed, write or delete files, save models.
STAGE_WORK = ("torch.distributed", ".write_text(", ".write_bytes(", ".unlink(", "rmtree(", "torch.save(", "save(")


def test_the_cli_holds_no_stage_logic():
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        source = path.read_text()
        assert not [w for w in STAGE_WORK if w in source], (path.name, [w for w in STAGE_WORK if w in source])
