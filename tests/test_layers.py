"""The layers as built: the core, the store, the plots, the report and the schedules import no
torch, and no import anywhere in ``src/lrlab`` (inside functions too) points up a layer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lrlab"

BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is not importable in this test ({name})")
sys.meta_path.insert(0, Block())
"""


def test_store_report_and_schedules_work_with_torch_unimportable(tmp_path):
    code = BLOCK_TORCH + f"""
import lrlab.schedules, lrlab.store, lrlab.report, lrlab.core.ranking, lrlab.report.html, lrlab.plot.static
from lrlab.store import Store
from lrlab.core.records import RunConfig, RunRecord, EpochRecord
from lrlab.report import build_report_data, write_report
store = Store({str(tmp_path / "r.db")!r})
config = RunConfig(task="digits-mlp", lr=0.1, schedule="cosine(lr=0.1, total_steps=20)")
store.begin_run(RunRecord(id="a", sweep="s", status="queued", config=config, seed=0))
store.append_metrics("a", [(i, 1, [config.schedule(i)], None, 2.0 - i / 20, 1.0) for i in range(20)],
                     [EpochRecord("a", 1, 20, 1.5, 1.4, 0.3, 0.7, 1.0)])
store.end_run("a", "done")
from lrlab.report import load_report_data
data = load_report_data(store, sweep="s")
write_report(data, __import__("pathlib").Path({str(tmp_path / "r.html")!r}))
assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok" and (tmp_path / "r.html").stat().st_size > 10_000


# Lower layers first; a module may import its own layer and the layers below (ARCHITECTURE.md).
LAYERS = [
    {"schedules", "formatting", "deprecation", "files"},
    {"core", "optim", "torch", "torch_utils", "instruments"},
    {"store", "plot"},
    {"training", "finder", "surfaces", "finetune", "track", "lightning", "transformers", "keras", "export"},
    {"sweeps"},
    {"report"},
    {"study", "tune", "transfer"},
    {"cli"},
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}
MODULES = sorted(p for p in SRC.rglob("*.py") if p.parent != SRC or p.name not in ("__init__.py", "__main__.py"))


def _package(path: Path) -> str:
    return path.relative_to(SRC).with_suffix("").parts[0]


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of the nodes under an ``if TYPE_CHECKING:`` block (imports for annotations only)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    return inside


def lrlab_imports(source: str) -> list[tuple[int, str]]:
    """(line, lrlab package) of every import in ``source`` at any depth (inside functions,
    classes, try blocks), ``TYPE_CHECKING`` blocks excepted."""
    tree = ast.parse(source)
    skipped = _type_checking_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "lrlab":
                found += [(node.lineno, a.name) for a in node.names if a.name in LEVEL]
            elif node.module.startswith("lrlab."):
                found.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("lrlab.")]
    return sorted(found)


def test_every_layer_names_a_package_that_exists():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in SRC.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    assert set(LEVEL) == packages | modules


def test_the_check_sees_an_import_hidden_in_a_function():
    source = "def plot():\n    if True:\n        from lrlab.report.figures import x\n"
    assert lrlab_imports(source) == [(3, "report")]
    assert lrlab_imports("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lrlab.cli import app\n") == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_every_import_points_down(path):
    own = _package(path)
    if own not in LEVEL:
        pytest.fail(f"{path.relative_to(SRC)}: package {own!r} is in no layer of this test")
    up = [f"line {line}: {name}" for line, name in lrlab_imports(path.read_text(encoding="utf-8"))
          if LEVEL.get(name, -1) > LEVEL[own]]  # fmt: skip
    assert not up, f"{path.relative_to(SRC)} ({own}) imports up: {up}"
