"""The layers of DESIGN §18, checked on the source of ``dagexec/``.

Each module sits in one layer of ``LAYERS`` (leaf, definition, plan, run, executors,
surface, from the bottom) and imports only from its own layer or a lower one.  The
methods in ``FACADES`` are the only upward imports allowed.  On top of that, an executor
takes from the run layer only the protocol and the worker side (``EXECUTOR_SIDE``), never
the loop, and no module imports the package root, which imports every layer.

The scan parses every module with ``ast`` and imports none of them.  It sees every import
that runs: top-level ones and those inside functions and methods (named
``Class.method``, ``function.inner``), relative ones resolved against the module's
package, and ``from . import x`` as an import of the module ``x``.  Imports in the body of
``if TYPE_CHECKING:`` never run and are left out.

``KNOWN`` holds the violations the code has today.  They are allowed for now, and an
entry that no longer occurs fails the test: fixing one means deleting its entry, so the
list only shrinks.  ``IMPORTED_TODAY`` plays the same part for the heavy modules that
``import dagexec`` loads.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "dagexec"

# Where each module belongs, in the layers of the target layout; the planned packages
# and modules are listed ahead.  An entry names one module; an entry ending in ".*"
# names a package and every module inside it.
LAYERS: dict[str, tuple[str, ...]] = {
    "leaf": (
        "dagexec._errors", "dagexec._state", "dagexec._callsite", "dagexec._typecheck",
        "dagexec._envelope", "dagexec._files", "dagexec._folders", "dagexec._capture",
        "dagexec._proctree", "dagexec._command", "dagexec._version", "dagexec._interrupts",
        "dagexec._walk", "dagexec._tracectx",
    ),
    "definition": (
        "dagexec._task", "dagexec._graph", "dagexec._section", "dagexec._cond", "dagexec._shell",
        "dagexec._node", "dagexec._mapping",
    ),
    "plan": (
        "dagexec._plan", "dagexec._compile", "dagexec.plan.*",
    ),
    "run": (
        "dagexec._engine", "dagexec._result", "dagexec._mutation", "dagexec._bundle", "dagexec.run.*",
        "dagexec.cache.*",
    ),
    # dagexec._worker: the old path of the protocol, the worker side and the transport
    "executors": ("dagexec.executors.*", "dagexec._worker"),
    "surface": (
        "dagexec", "dagexec.__main__", "dagexec._artifact", "dagexec._dot", "dagexec._html", "dagexec._overview",
        "dagexec._progress", "dagexec.cli.*", "dagexec._api",
    ),
}  # fmt: skip
RANK = {layer: rank for rank, layer in enumerate(LAYERS)}

# The only methods that may import from a higher layer: each reaches the code that
# draws, saves, runs or explains its object only when it is called.
FACADES: frozenset[tuple[str, str]] = frozenset({
    ("dagexec._graph", "Graph.compile"),
    ("dagexec._graph", "Graph.to_dot"),
    ("dagexec._graph", "Graph._repr_mimebundle_"),
    ("dagexec.plan.compiled", "CompiledGraph.run"),
    ("dagexec.plan.compiled", "CompiledGraph.save"),
    ("dagexec.plan.compiled", "CompiledGraph.to_dot"),
    ("dagexec.plan.compiled", "CompiledGraph._repr_mimebundle_"),
    ("dagexec.plan.compiled", "CompiledGraph.to_html"),
    ("dagexec.plan.compiled", "CompiledGraph.cache_keys"),
    ("dagexec.plan.compiled", "CompiledGraph.explain"),
    ("dagexec._result", "RunResult.to_dot"),
    ("dagexec._result", "RunResult._repr_mimebundle_"),
    ("dagexec._result", "RunResult.to_html"),
})  # fmt: skip

# What an executor may import from the run layer: the protocol and the worker side
# (one trial, a batch, a pipe).
EXECUTOR_SIDE = (
    "dagexec._worker",
    "dagexec.run.batches",
    "dagexec.run.pipes",
    "dagexec.run.protocol",
    "dagexec.run.worker",
)

# Today's violations, as (importer, function, imported module).  Delete an entry when
# its import goes: an entry that no longer occurs fails test_known_violations_still_occur.
KNOWN: tuple[tuple[str, str, str], ...] = ()

# Modules `import dagexec` must not load: the heavy dependencies, which load only when
# used, and the run loop, which loads on the first run.
HEAVY = (
    "loky", "dask", "distributed", "graphviz", "rich", "cloudpickle", "opentelemetry",
    "dagexec._engine", "dagexec.run.loop",
)  # fmt: skip
# The ones `import dagexec` loads today; delete an entry when it no longer does.
IMPORTED_TODAY: tuple[str, ...] = ()


@dataclass(frozen=True)
class Import:
    """One import of a dagexec module that runs, found in the source of another."""

    importer: str  # dotted module name
    path: str  # file, relative to the repository
    line: int
    function: str  # "<module>", "Class.method", "function.inner"
    imported: str  # dotted module name
    statement: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.importer, self.function, self.imported)

    def describe(self, why: str) -> str:
        return (
            f"{self.path}:{self.line} in {self.function}: `{self.statement}` imports {self.imported}: {why}"
        )


@dataclass(frozen=True)
class Source:
    """What the scan found under one root: modules, the functions they define, imports."""

    modules: dict[str, Path]
    functions: dict[str, set[str]]
    imports: tuple[Import, ...]


def _module_names(root: Path) -> dict[str, Path]:
    names = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Scanner(ast.NodeVisitor):
    """Collects the imports of one module that run, each with its enclosing function."""

    def __init__(self, module: str, path: Path, root: Path, modules: dict[str, Path]) -> None:
        self.module = module
        self.path = path.relative_to(root).as_posix()
        self.package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        self.modules = modules
        self.scope: list[str] = []
        self.functions: set[str] = set()
        self.imports: list[Import] = []

    def _enter(self, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)
        if not isinstance(node, ast.ClassDef):
            self.functions.add(".".join(self.scope))
        self.generic_visit(node)
        self.scope.pop()

    visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _enter

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        for statement in node.orelse:  # the body never runs; the else branch does
            self.visit(statement)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            name = alias.name
            while name not in self.modules and "." in name:  # import dagexec.x.name
                name = name.rpartition(".")[0]
            self._add(node, name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join([*parts, base] if base else parts)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            self._add(node, submodule if submodule in self.modules else base)

    def _add(self, node: ast.Import | ast.ImportFrom, imported: str) -> None:
        if imported != PACKAGE and not imported.startswith(PACKAGE + "."):
            return
        if imported == self.module:
            return
        function = ".".join(self.scope) or "<module>"
        found = Import(self.module, self.path, node.lineno, function, imported, ast.unparse(node))
        if found not in self.imports:
            self.imports.append(found)


@functools.cache
def scan(root: Path) -> Source:
    """Parse every module of the package under ``root``; import none of them."""
    modules = _module_names(root)
    functions, imports = {}, []
    for module, path in modules.items():
        scanner = _Scanner(module, path, root, modules)
        scanner.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        functions[module] = scanner.functions
        imports.extend(scanner.imports)
    return Source(modules, functions, tuple(imports))


def layers_of(module: str) -> list[str]:
    """Every layer whose entries name ``module`` (one, for a well-kept table)."""
    return [
        layer
        for layer, entries in LAYERS.items()
        if any(
            module == entry or (entry.endswith(".*") and (module + ".").startswith(entry[:-1]))
            for entry in entries
        )
    ]


def layer_of(module: str) -> str | None:
    """The module's layer; None when LAYERS misses it (the first test reports that)."""
    found = layers_of(module)
    return found[0] if found else None


def upward(imp: Import) -> str | None:
    low, high = layer_of(imp.importer), layer_of(imp.imported)
    if low is None or high is None or RANK[high] <= RANK[low]:
        return None
    if (imp.importer, imp.function) in FACADES:
        return None
    return (
        f"from the {low} layer up to the {high} layer; only the methods in FACADES "
        "may import from a higher layer"
    )


def executor_into_run(imp: Import) -> str | None:
    if layer_of(imp.importer) != "executors" or layer_of(imp.imported) != "run":
        return None
    if imp.imported in EXECUTOR_SIDE:
        return None
    return "an executor reaches into the run layer; it may import from it only " + ", ".join(EXECUTOR_SIDE)


def package_root(imp: Import) -> str | None:
    if imp.imported != PACKAGE:
        return None
    return "the package root imports every layer; import the module that defines the name"


RULES = (upward, executor_into_run, package_root)


def violations(source: Source) -> list[tuple[Import, Callable[[Import], str | None], str]]:
    """Each import that breaks a rule, with the rule and its reason (an import may break two)."""
    return [(imp, rule, why) for imp in source.imports for rule in RULES if (why := rule(imp)) is not None]


def _not_known(rule: Callable[[Import], str | None]) -> list[str]:
    return [
        imp.describe(why)
        for imp, broken, why in violations(scan(ROOT))
        if broken is rule and imp.key not in KNOWN
    ]


def test_every_module_is_in_exactly_one_layer() -> None:
    source = scan(ROOT)
    problems = [
        f"{path.relative_to(ROOT).as_posix()} ({module}) is in no layer: add it to LAYERS in "
        "tests/test_layers.py, in the layer it belongs to (DESIGN §18)"
        for module, path in source.modules.items()
        if not layers_of(module)
    ]
    problems += [
        f"{module} is listed in several layers: {', '.join(layers_of(module))}"
        for module in source.modules
        if len(layers_of(module)) > 1
    ]
    problems += [
        f"{imp.path}:{imp.line} in {imp.function}: `{imp.statement}` imports {imp.imported}, "
        "which is no module of the package"
        for imp in source.imports
        if imp.imported not in source.modules
    ]
    assert problems == [], "\n".join(problems)


def test_no_upward_import_outside_the_facades() -> None:
    new = _not_known(upward)
    assert new == [], "\n".join(new)


def test_executors_import_from_run_only_the_protocol_and_the_worker_side() -> None:
    new = _not_known(executor_into_run)
    assert new == [], "\n".join(new)


def test_no_module_imports_the_package_root() -> None:
    new = _not_known(package_root)
    assert new == [], "\n".join(new)


def test_known_violations_still_occur() -> None:
    assert len(set(KNOWN)) == len(KNOWN), "KNOWN lists an entry twice"
    occurring = {imp.key for imp, _, _ in violations(scan(ROOT))}
    gone = [entry for entry in KNOWN if entry not in occurring]
    assert gone == [], "\n".join(
        f"KNOWN entry {entry} no longer occurs: delete it from KNOWN in tests/test_layers.py "
        "(the list only shrinks)"
        for entry in gone
    )


def test_facades_name_methods_that_exist() -> None:
    functions = scan(ROOT).functions
    missing = sorted(
        f"FACADES names {function} in {module}, which defines no such method: update FACADES"
        for module, function in FACADES
        if function not in functions.get(module, set())
    )
    assert missing == [], "\n".join(missing)


def test_import_dagexec_loads_no_heavy_module() -> None:
    code = "import sys, json, dagexec; print(json.dumps([dagexec.__file__, sorted(sys.modules)]))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    file, loaded = json.loads(done.stdout)
    assert Path(file).resolve() == ROOT / PACKAGE / "__init__.py", (
        f"imported {file}, not the one under {ROOT}"
    )
    heavy = sorted(name for name in HEAVY if any(m == name or m.startswith(name + ".") for m in loaded))
    worse = [name for name in heavy if name not in IMPORTED_TODAY]
    assert worse == [], (
        f"`import dagexec` loads {', '.join(worse)}, which must load only when used: import it "
        "inside the function that needs it"
    )
    gone = [name for name in IMPORTED_TODAY if name not in heavy]
    assert gone == [], (
        f"`import dagexec` no longer loads {', '.join(gone)}: delete it from IMPORTED_TODAY in "
        "tests/test_layers.py (the list only shrinks)"
    )


# A small package named dagexec, laid out so each rule and each kind of import shows once.
FAKE_TREE = {
    "__init__.py": "from ._graph import Graph\n",
    "_graph.py": "import os\nfrom typing import Any\n",
    "_state.py": "",
    "_result.py": "",
    "_engine.py": "",
    "_worker.py": "",
    "_errors.py": """\
        from __future__ import annotations
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from ._result import RunResult
        else:
            from . import _state
        class Problem:
            def describe(self):
                def inner():
                    from ._engine import run_plan, Executor
                return inner
        """,
    "executors/__init__.py": "from .. import _engine\nfrom . import loky\n",
    "executors/loky.py": "import dagexec._worker\nfrom .._errors import Problem\n",
    "cli.py": "def _parser():\n    from . import __version__\n",
}


def test_the_scan_resolves_each_kind_of_import_and_names_its_function(tmp_path: Path) -> None:
    for name, text in FAKE_TREE.items():
        (tmp_path / PACKAGE / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / PACKAGE / name).write_text(textwrap.dedent(text))
    source = scan(tmp_path)
    assert sorted((i.importer, i.line, i.function, i.imported) for i in source.imports) == [
        ("dagexec", 1, "<module>", "dagexec._graph"),
        ("dagexec._errors", 6, "<module>", "dagexec._state"),
        ("dagexec._errors", 10, "Problem.describe.inner", "dagexec._engine"),
        ("dagexec.cli", 2, "_parser", "dagexec"),
        ("dagexec.executors", 1, "<module>", "dagexec._engine"),
        ("dagexec.executors", 2, "<module>", "dagexec.executors.loky"),
        ("dagexec.executors.loky", 1, "<module>", "dagexec._worker"),
        ("dagexec.executors.loky", 2, "<module>", "dagexec._errors"),
    ]
    assert source.functions["dagexec._errors"] == {"Problem.describe", "Problem.describe.inner"}
    assert [imp.describe(why) for imp, _, why in violations(source)] == [
        "dagexec/_errors.py:10 in Problem.describe.inner: `from ._engine import run_plan, Executor` "
        "imports dagexec._engine: from the leaf layer up to the run layer; only the methods in "
        "FACADES may import from a higher layer",
        "dagexec/cli.py:2 in _parser: `from . import __version__` imports dagexec: the package "
        "root imports every layer; import the module that defines the name",
        "dagexec/executors/__init__.py:1 in <module>: `from .. import _engine` imports "
        "dagexec._engine: an executor reaches into the run layer; it may import from it only "
        "dagexec._worker, dagexec.run.batches, dagexec.run.pipes, dagexec.run.protocol, dagexec.run.worker",
    ]
