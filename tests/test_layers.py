"""The layers as built: the store, the report and the schedules import no torch, and no
package imports one above it."""

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
import lrlab.schedules, lrlab.store, lrlab.report, lrlab.report.ranking, lrlab.report.html, lrlab.report.static
from lrlab.store import Store
from lrlab.store.records import RunConfig, RunRecord, EpochRecord
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
    {"schedules", "formatting"},
    {"store", "optim", "torch", "keras", "torch_utils"},
    {"training", "finder", "surfaces", "finetune", "integrations", "lightning", "transformers", "track"},
    {"sweeps"},
    {"report"},
    {"study", "tune"},
    {"cli"},
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def _package(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return parts[0]


def _module_level_imports(path: Path) -> list[str]:
    """lrlab packages imported at module level (not inside functions, not TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in [node] if not isinstance(node, ast.If) else node.body:
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("lrlab."):
                found.append(sub.module.split(".")[1])
            elif isinstance(sub, ast.Import):
                found += [a.name.split(".")[1] for a in sub.names if a.name.startswith("lrlab.")]
    return found


@pytest.mark.parametrize("path", sorted(p for p in SRC.rglob("*.py") if p.name != "__main__.py"), ids=str)
def test_module_level_imports_point_down(path):
    if path.parent == SRC and path.name == "__init__.py":
        return
    own = _package(path)
    if own not in LEVEL:
        pytest.fail(f"{path.relative_to(SRC)}: package {own!r} is in no layer of this test")
    up = [name for name in _module_level_imports(path) if LEVEL.get(name, -1) > LEVEL[own]]
    assert not up, f"{path.relative_to(SRC)} ({own}) imports up: {up}"
