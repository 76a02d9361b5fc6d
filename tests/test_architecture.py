"""The package's shape: no import cycles, every module importable on its own, imports at the
top of modules (a short, named list of exceptions), and the light commands free of torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "prismsim"

# Imports inside functions that are there on purpose: optional extras loaded only when
# asked for, and what keeps `prismsim --help`, `check` and `assets list` free of torch.
DEFERRED_ALLOWED = {
    ("prismsim", "prismsim.executors.memory"),  # prismsim.run_numerics, lazily
    ("prismsim", "prismsim.models.load"),  # prismsim.load_model, lazily
    ("prismsim.datasets", "datasets"),  # the optional `hub` extra
    ("prismsim.sweep.executors", "dask.distributed"),  # the optional `dask` extra
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Module names an import statement names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:
        parent = module.split(".")[: len(module.split(".")) - node.level + is_package]
        base = ".".join([*parent, base] if base else parent)
    return [base] + [f"{base}.{a.name}" for a in node.names]


def _top_level_imports(tree: ast.Module) -> list[ast.AST]:
    """Statements run on import (TYPE_CHECKING blocks are for annotations only)."""
    out = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        elif isinstance(node, ast.Try) or (
                isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test)):
            out += [n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)]
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        targets = set()
        for node in _top_level_imports(tree):
            for target in _imported(node, name, path.name == "__init__.py"):
                if target in modules and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    assert _cycle(_graph()) is None


def test_imports_stay_at_the_top_of_modules():
    deferred = set()
    for name, path in _modules().items():
        if name.startswith("prismsim.cli"):
            continue  # commands import their library when they run (see the cli docstring)
        tree = ast.parse(path.read_text())
        top = {id(n) for n in _top_level_imports(tree)}
        type_only = {id(n) for node in tree.body if isinstance(node, ast.If)
                     and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top | type_only:
                deferred |= {(name, t) for t in _imported(node, name, False)[:1]}
    assert deferred <= DEFERRED_ALLOWED, sorted(deferred - DEFERRED_ALLOWED)


_FRESH_IMPORTS = """
import importlib, os, sys
import transformers
for heavy in ("torch", "torch.distributed", "pandas", "matplotlib.figure", "simpy",
              "pydantic", "fvcore.nn", "onnx", "yaml", "click", "rich", "safetensors.torch",
              "transformers.modeling_utils", "transformers.image_processing_utils"):
    importlib.import_module(heavy)  # shared by every child: only prismsim is fresh
for cls in ("ViTForImageClassification", "Dinov2Model", "BertModel", "GPT2LMHeadModel",
            "AutoTokenizer", "AutoImageProcessor"):
    getattr(transformers, cls)
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException as err:
            print(f"{name}: {type(err).__name__}: {err}", flush=True)
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(name)
print("FAILED", failed)
"""


def test_every_module_imports_alone():
    """Each module imported first, on its own, in a process that has not imported
    prismsim (forked from one that loaded the third-party libraries once)."""
    names = sorted(_modules())
    assert len(names) > 60
    done = subprocess.run([sys.executable, "-c", _FRESH_IMPORTS, *names], capture_output=True,
                          text=True, timeout=600, cwd=PACKAGE.parent)
    assert done.stdout.strip().endswith("FAILED []"), done.stdout + done.stderr


_TORCH_FREE = """
import sys
from click.testing import CliRunner
from prismsim.cli.main import main
result = CliRunner().invoke(main, sys.argv[1:])
assert result.exit_code == 0, result.output
print("torch" in sys.modules, "transformers" in sys.modules)
"""


def test_light_commands_do_not_import_torch():
    for args in (["--help"], ["check", "scenarios/vit_200mbps.yaml"], ["assets", "list"],
                 ["check", "scenarios/jetson_wifi.yaml"]):
        done = subprocess.run([sys.executable, "-c", _TORCH_FREE, *args], capture_output=True,
                              text=True, timeout=120, cwd=PACKAGE.parent)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["False", "False"], (args, done.stdout)
