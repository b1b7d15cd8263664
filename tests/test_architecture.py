"""The shape of the package (docs/ARCHITECTURE.md): no import cycles, no import from a lower
layer to a higher one, no oversized modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "crossent"
MAX_LINES = 400
# modules allowed over MAX_LINES, each with the reason; keep this empty
LONG_MODULES: dict[str, str] = {}
#: docs/ARCHITECTURE.md's layers ("What may import what"), by top-level name under crossent;
#: "" is the top package (the public API), between report and the applications
LAYERS = {
    "errors": 10, "_lazy": 10, "_memory": 10,
    "_validation": 20, "units": 20, "_runtime": 20,
    "kernels": 30,
    "losses": 40, "distributed": 40, "nn": 40,
    "io": 50, "metrics": 50,
    "scoring": 55,
    "report": 60,
    "": 65,
    "lab": 70, "recsys": 70, "benchmarking": 70, "_bench_support": 70,
    "cli": 80,
    "__main__": 90,
}
#: imports within one layer that the architecture rules out
FORBIDDEN = {
    ("crossent.distributed", "crossent.losses"): "distributed takes the kernel rules only",
    ("crossent.kernels.cuda", "crossent.kernels.linear"): "linear loads cuda, not the reverse",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imported(node: ast.Import | ast.ImportFrom, name: str, is_package: bool,
              known: set[str]) -> set[str]:
    """The modules one import statement of module ``name`` names: ``from a import b`` is
    ``a.b`` when that is a module, else ``a``; relative imports resolve against the package."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:  # relative: resolve against this module's package
        package = name if is_package else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    return {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
            for alias in node.names}


def _top_level_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The crossent modules ``name`` imports when it is imported.

    Imports inside functions run later (lazy loading) and ``if TYPE_CHECKING:`` blocks never run,
    so neither is an edge. ``from a import b`` is an edge to ``a.b`` when that is a module,
    else to ``a``; a module's parent package is not counted (Python runs it first, but it is not
    a dependency the module chose).
    """
    is_package = path.name == "__init__.py"
    edges: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if test not in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body + node.orelse + node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                edges.update(_imported(node, name, is_package, known))

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {edge for edge in edges if edge in known and edge != name}


def _every_import(path: Path, name: str, known: set[str]) -> set[str]:
    """The crossent modules ``name`` imports anywhere: at the top or inside functions (late
    imports are still dependencies); only ``if TYPE_CHECKING:`` blocks are left out."""
    is_package = path.name == "__init__.py"
    edges: set[str] = set()

    class Imports(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                for statement in node.orelse:
                    self.visit(statement)
            else:
                self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            edges.update(_imported(node, name, is_package, known))

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            edges.update(_imported(node, name, is_package, known))

    Imports().visit(ast.parse(path.read_text(encoding="utf-8")))
    return {edge for edge in edges if edge in known and edge != name}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else ""]


def _upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every edge of ``graph`` that breaks the layer order or is in :data:`FORBIDDEN`."""
    broken = []
    for module, imported in sorted(graph.items()):
        for target in sorted(imported):
            if _layer(target) > _layer(module):
                broken.append(f"{module} (layer {_layer(module)}) imports {target} "
                              f"(layer {_layer(target)})")
            for (low, high), why in FORBIDDEN.items():
                if module.startswith(low) and target.startswith(high):
                    broken.append(f"{module} imports {target}: {why}")
    return broken


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return [*path[path.index(successor):], successor]
            if successor not in state and (cycle := visit(successor)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_tree() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_import_graph_sees_real_edges() -> None:
    modules = _modules()
    graph = {name: _top_level_imports(path, name, set(modules)) for name, path in modules.items()}
    assert "crossent.errors" in graph["crossent.cli"]
    assert "crossent.losses" in graph["crossent.lab.run"]


def test_the_import_graph_of_crossent_has_no_cycle() -> None:
    modules = _modules()
    graph = {name: _top_level_imports(path, name, set(modules)) for name, path in modules.items()}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_package_has_a_layer() -> None:
    tops = {name.split(".")[1] if "." in name else "" for name in _modules()}
    assert tops <= set(LAYERS), f"no layer in LAYERS for {sorted(tops - set(LAYERS))}"


def test_the_layer_check_sees_an_upward_import_and_a_forbidden_one() -> None:
    graph = {
        "crossent.kernels.cpu": {"crossent.errors", "crossent.recsys.training.loop"},
        "crossent.distributed.sharded": {"crossent.losses.linear"},
        "crossent.cli.train": {"crossent.recsys.training.loop", "crossent"},
    }
    assert _upward_imports(graph) == [
        "crossent.distributed.sharded imports crossent.losses.linear: "
        + FORBIDDEN[("crossent.distributed", "crossent.losses")],
        "crossent.kernels.cpu (layer 30) imports crossent.recsys.training.loop (layer 70)",
    ]


def test_no_import_runs_upward_in_the_layers() -> None:
    modules = _modules()
    graph = {name: _every_import(path, name, set(modules)) for name, path in modules.items()}
    assert "crossent.kernels.cpu" in graph["crossent.losses._fused"]  # a late import is seen
    assert _upward_imports(graph) == []


#: docs/ARCHITECTURE.md's order inside crossent.recsys (the "recsys/" section): a watch goes
#: data -> models -> evaluation -> training -> serving; the run that composes them (spec,
#: retrieval, ranking_stage, run, results, reevaluate, report, the package) sits on top, and
#: the defaults, the events and the folder format sit below everything
RECSYS_LAYERS = {
    "defaults": 1, "events": 1, "_folder": 1,
    "data": 2, "models": 3, "evaluation": 4, "training": 5, "serving": 6,
}
RECSYS_TOP = 7


def _recsys_layer(module: str) -> int:
    parts = module.split(".")
    return RECSYS_LAYERS.get(parts[2], RECSYS_TOP) if len(parts) > 2 else RECSYS_TOP


def _recsys_upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} imports {target}"
        for module, imported in sorted(graph.items()) if module.startswith("crossent.recsys.")
        for target in sorted(imported)
        if target.startswith("crossent.recsys") and _recsys_layer(target) > _recsys_layer(module)
    ]


def test_the_recsys_order_check_sees_a_sub_package_importing_a_later_one() -> None:
    graph = {
        "crossent.recsys.data.loaders": {"crossent.recsys.models.networks"},
        "crossent.recsys.training.loop": {"crossent.recsys.evaluation.protocol"},
        "crossent.recsys.run": {"crossent.recsys.serving.checkpoint"},
    }
    assert _recsys_upward_imports(graph) == [
        "crossent.recsys.data.loaders imports crossent.recsys.models.networks"
    ]


def test_recsys_sub_packages_import_only_earlier_stages() -> None:
    modules = _modules()
    graph = {name: _every_import(path, name, set(modules)) for name, path in modules.items()}
    assert _recsys_upward_imports(graph) == []


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_module_is_longer_than_400_lines(name: str) -> None:
    lines = len(_modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES or name in LONG_MODULES, f"{name} has {lines} lines"


#: the packages that may draw on a terminal (docs/ARCHITECTURE.md, "The library reports,
#: the CLI renders"); the rest of the library reports through crossent.recsys.events
RENDERERS = ("crossent.cli", "crossent.report")


def _third_party_roots(path: Path) -> set[str]:
    """The top-level names of every absolute import in ``path``, type-only ones included."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            roots.add(node.module.partition(".")[0])
    return roots


def test_the_rich_check_sees_a_late_and_a_type_only_import(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rich.console import "
        "Console\ndef f():\n    import rich.progress\n", encoding="utf-8"
    )
    assert "rich" in _third_party_roots(source)
    source.write_text("import richer\nfrom .rich import x\n", encoding="utf-8")
    assert "rich" not in _third_party_roots(source)


def test_only_the_cli_and_the_report_import_rich() -> None:
    printing = [
        name for name, path in _modules().items()
        if "rich" in _third_party_roots(path)
        and not any(name == top or name.startswith(top + ".") for top in RENDERERS)
    ]
    assert printing == [], f"import rich only in {RENDERERS}; these print: {printing}"


TESTS = Path(__file__).resolve().parent


def _test_layout_problems(tests: Path, package: Path) -> list[str]:
    """Test files that break docs/ARCHITECTURE.md's layout: ``tests/<package>/`` mirrors
    ``src/crossent/<package>/`` and its files are ``test_<last part>_<topic>.py`` (or
    ``test_<last part>.py``); at the top, ``test_<module>.py`` for a top-level module or a
    whole-tree check."""
    problems = []
    for path in sorted(tests.rglob("test_*.py")):
        folder = path.parent.relative_to(tests)
        if folder.parts:
            if not (package / folder).is_dir():
                problems.append(f"{path.relative_to(tests)}: no package crossent/{folder}")
                continue
            prefix = "test_" + folder.parts[-1].lstrip("_")
            if path.stem != prefix and not path.stem.startswith(prefix + "_"):
                problems.append(f"{path.relative_to(tests)}: not named {prefix}_<topic>.py")
        elif path.stem.removeprefix("test_") not in WHOLE_TREE_CHECKS and not (
            package / (path.stem.removeprefix("test_") + ".py")
        ).exists() and not (package / ("_" + path.stem.removeprefix("test_") + ".py")).exists():
            problems.append(f"{path.name}: no top-level module for it")
    return problems


#: top-level test files that check the whole tree rather than one module
WHOLE_TREE_CHECKS = ("architecture", "imports")


def test_the_layout_check_names_a_misplaced_test(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg" / "losses").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "units.py").write_text("")
    tests = tmp_path / "tests"
    for name in ("losses/test_losses_dispatch.py", "losses/test_grad.py", "nope/test_nope.py",
                 "test_units.py", "test_misc.py"):
        (tests / name).parent.mkdir(parents=True, exist_ok=True)
        (tests / name).write_text("")
    assert _test_layout_problems(tests, tmp_path / "src" / "pkg") == [
        "losses/test_grad.py: not named test_losses_<topic>.py",
        "nope/test_nope.py: no package crossent/nope",
        "test_misc.py: no top-level module for it",
    ]


def test_tests_mirror_the_packages_with_one_naming_scheme() -> None:
    assert _test_layout_problems(TESTS, PACKAGE) == []


#: the wordings of a bad option that only crossent._validation may write (check_int,
#: check_number, check_bool, check_choice, not_a_choice); a message about a data value at a
#: position (``target[2] = 10 is outside [0, 10)``) is not an option check and may be local
BOUNDS_OR_CHOICE = re.compile(
    r"\bmust be (?:one of|an integer|a finite number|a number|in [\[(]|>=|>|<=|<|True or False"
    r"|positive|non-negative)|\bis not one of\b(?! the known labels)"
)


def _option_messages(path: Path) -> list[str]:
    """``path:line`` of each string (f-string parts included, docstrings not) with a bounds or
    choice wording."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        f"{path.name}:{node.lineno}" for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings and BOUNDS_OR_CHOICE.search(node.value)
    ]


def test_the_message_check_sees_an_f_string_and_skips_a_docstring(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text(
        'def f(k):\n    """k must be an integer >= 1."""\n'
        '    raise ValueError(f"k = {k} must be >= 1")\n', encoding="utf-8"
    )
    assert _option_messages(source) == ["module.py:3"]


def test_only_validation_writes_bounds_and_choice_messages() -> None:
    written = [
        message for name, path in _modules().items()
        if not name.startswith("crossent._validation") for message in _option_messages(path)
    ]
    assert written == [], f"use crossent._validation's checks instead: {written}"


MAX_FUNCTION_LINES = 60


def _long_functions(path: Path, limit: int) -> list[str]:
    """``name (lines)`` of each function in ``path`` longer than ``limit`` lines, its docstring
    not counted (a long example is welcome; long logic is not)."""
    long = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                lines -= (first.end_lineno or first.lineno) - first.lineno + 1
            if lines >= limit:
                long.append(f"{node.name} ({lines})")
    return long


def test_the_function_check_counts_code_not_docstrings(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(8))
    source.write_text(f'def f():\n    """One.\n\n    Two.\n    """\n{body}\n', encoding="utf-8")
    assert _long_functions(source, 9) == ["f (9)"] and _long_functions(source, 10) == []


def test_no_recsys_function_reaches_60_lines() -> None:
    long = {
        name: found for name, path in _modules().items()
        if name.startswith("crossent.recsys") and (found := _long_functions(path, 60))
    }
    assert long == {}
