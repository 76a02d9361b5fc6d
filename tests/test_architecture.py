"""The package's shape: rooms that import only the rooms below them (``ROOMS``, the layering
of docs/how-it-works.md), no import cycles, every module importable on its own, imports at
the top of modules (a short, named list of exceptions), the simulator and the light
commands free of torch, and no module or function longer than the project's limits."""

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
    ("prismsim.sweep.backends", "dask.distributed"),  # the optional `dask` extra
}


# Every room of the package (a subpackage, or a module at its top) and the rooms it may
# import, bottom up: the layering of docs/how-it-works.md. Imports inside functions count
# too. The package root is no room: any room may read its ``__version__``, and its lazy
# public API (``prismsim.run_numerics``, ``prismsim.load_model``) reaches two rooms.
ROOMS: dict[str, set[str]] = {
    # plain data and helpers
    "userfiles": set(), "cache_dir": set(), "progress": set(), "metrics": set(),
    "pareto": set(), "workload": set(), "catalog": set(),
    "assets": {"cache_dir", "userfiles"},
    "datasets": {"assets"},
    # the model, the per-device programs, what a step costs
    "numerics": set(),
    "models": {"assets", "cache_dir", "numerics"},
    "strategies": {"models", "numerics", "workload"},
    "names": {"models", "strategies"},
    "configuration": {"strategies"},
    "cost": {"userfiles"},
    # running the programs: in memory, traced, over GLOO; what they give
    "executors": {"cache_dir", "configuration", "cost", "models", "numerics", "strategies",
                  "workload"},
    "accuracy": {"cache_dir", "configuration", "datasets", "executors", "metrics", "models",
                 "progress", "strategies"},
    "finetune": {"accuracy", "datasets", "executors", "models", "numerics", "progress"},
    "flops_table": {"configuration", "cost", "executors", "numerics", "progress", "strategies",
                    "workload"},
    # simulating them; what users ask of the simulator
    "sim": {"cost", "userfiles", "workload"},
    "adaptive": {"configuration", "sim", "userfiles", "workload"},
    "point": {"executors", "sim", "workload"},
    "scenario": {"adaptive", "configuration", "models", "names", "sim", "strategies",
                 "userfiles"},
    "sweep": {"accuracy", "adaptive", "configuration", "executors", "finetune", "metrics",
              "models", "pareto", "progress", "scenario", "sim", "strategies", "userfiles",
              "workload"},
    "plots": {"configuration", "metrics", "pareto", "sim", "sweep"},
    "serve": {"executors", "names", "plots", "progress", "scenario", "sim", "strategies",
              "userfiles", "workload"},
    "plan": {"accuracy", "configuration", "cost", "executors", "metrics", "names", "pareto",
             "plots", "progress", "scenario", "serve", "sim", "strategies", "userfiles",
             "workload"},
    # measuring the host, running for real, and comparing
    "profiling": {"cost", "executors", "models", "sim", "strategies", "userfiles"},
    "testbed": {"executors", "models", "profiling", "strategies", "workload"},
    "validation": {"cost", "executors", "models", "names", "profiling", "serve", "sim",
                   "strategies", "testbed", "userfiles", "workload"},
    # the command: imports each library when it runs
    "cli": {"*"},
}
ROOT = "prismsim"


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


def _room(module: str) -> str:
    parts = module.split(".")
    return ROOT if len(parts) == 1 else parts[1]


def _room_graph() -> dict[str, set[str]]:
    """Room -> the rooms its modules import anywhere (top, functions, TYPE_CHECKING)."""
    modules, graph = _modules(), {}
    for name, path in modules.items():
        found = graph.setdefault(_room(name), set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _imported(node, name, path.name == "__init__.py"):
                    if target in modules and _room(target) not in (_room(name), ROOT):
                        found.add(_room(target))
    return graph


def _wrong_way(graph: dict[str, set[str]], allowed: dict[str, set[str]]) -> list[str]:
    """Every import the table does not allow, as "room -> room"."""
    return sorted(f"{room} -> {target}" for room, targets in graph.items() if room != ROOT
                  for target in targets - allowed.get(room, set())
                  if "*" not in allowed.get(room, set()))


def test_rooms_import_only_what_the_table_allows():
    graph = _room_graph()
    assert set(graph) - {ROOT} == set(ROOMS), "rooms missing from, or extra in, ROOMS"
    assert _wrong_way(graph, ROOMS) == []
    assert graph[ROOT] <= {"executors", "models"}


def test_a_planted_wrong_way_import_fails_the_table():
    graph = {room: set(targets) for room, targets in _room_graph().items()}
    assert _wrong_way(graph, ROOMS) == []
    graph["sim"].add("strategies")  # the simulator reaching up into the programs
    graph["numerics"].add("models")  # pure math importing the stack it serves
    assert _wrong_way(graph, ROOMS) == ["numerics -> models", "sim -> strategies"]


def test_the_table_is_a_layering():
    """No room may import, through the table, a room that may import it."""
    rooms = {room: {t for t in targets if t != "*"} for room, targets in ROOMS.items()}
    assert all(t in rooms for targets in rooms.values() for t in targets)
    assert _cycle(rooms) is None


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


_SIM_ALONE = """
import importlib, pkgutil, sys
import prismsim.sim
for info in pkgutil.iter_modules(prismsim.sim.__path__):
    importlib.import_module(f"prismsim.sim.{info.name}")
print(sorted(m for m in ("torch", "transformers", "fvcore") if m in sys.modules))
"""


def test_the_simulator_imports_no_torch():
    done = subprocess.run([sys.executable, "-c", _SIM_ALONE], capture_output=True, text=True,
                          timeout=120, cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"], done.stdout


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 40


def test_no_module_or_function_is_too_long():
    long = []
    for name, path in _modules().items():
        source = path.read_text()
        if source.count("\n") > MAX_MODULE_LINES:
            long.append(f"{name}: {source.count(chr(10))} lines")
        long += [f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
                 for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                 and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def test_light_commands_do_not_import_torch():
    for args in (["--help"], ["check", "scenarios/vit_200mbps.yaml"], ["assets", "list"],
                 ["check", "scenarios/jetson_wifi.yaml"]):
        done = subprocess.run([sys.executable, "-c", _TORCH_FREE, *args], capture_output=True,
                              text=True, timeout=120, cwd=PACKAGE.parent)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["False", "False"], (args, done.stdout)
