"""Static architecture checks: the floors, the import graph, file sizes and the packaging.

The library's card folders install as ``noisybench.<folder>`` (setup.cfg ``package_dir``) and
stack in floors, lowest first; each may import only from itself and the floors below:

    core (0) < datasets (1) < noise (2) < methods (3) < results (4) < slurm (5) < bench (6)

Everything here reads the source with :mod:`ast` and never imports a library module, so these
tests are fast, need no torch and cannot be fooled by what an import happens to execute.

Import rules used throughout:

* every ``import``/``from ... import`` counts, at module level and inside functions and methods;
* imports in the body of an ``if TYPE_CHECKING:`` block are type-only and are skipped (its
  ``else:`` branch runs, so it counts);
* ``from noisybench.x import y`` goes to ``noisybench.x.y`` when ``y`` is a submodule (a file or
  a package on disk), otherwise to ``noisybench.x``; relative imports are resolved the same way.
"""
from __future__ import annotations

import ast
import configparser
import importlib.util
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = "noisybench"
FLOORS: dict[str, int] = {
    "core": 0, "datasets": 1, "noise": 2, "methods": 3, "results": 4, "slurm": 5, "bench": 6,
}
MAX_LINES = 350
DYNAMIC_IMPORTERS = {"import_module", "__import__"}


# --------------------------------------------------------------------------------------------
# Reading the source
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Import:
    file: Path            # the importing file, relative to the repository root
    line: int
    raw: str              # the module as written (relative imports keep their dots)
    module: str           # the absolute module the import goes to (submodules resolved)
    level: int            # 0 for absolute imports
    type_only: bool       # inside `if TYPE_CHECKING:`

    @property
    def top(self) -> str:
        return self.module.split(".")[0]

    @property
    def is_project(self) -> bool:
        return self.module == PROJECT or self.module.startswith(PROJECT + ".")

    @property
    def where(self) -> str:
        return f"{self.file.as_posix()}:{self.line}"


@dataclass(frozen=True)
class DynamicImport:
    file: Path
    line: int
    call: str             # "importlib.import_module", "__import__", ...
    argument: str | None  # the literal module name, or None when it is not a string literal


def library_files() -> list[Path]:
    """Every .py file of the card folders, recursively, relative to the repository root."""
    files = []
    for folder in FLOORS:
        for path in sorted((REPO / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                files.append(path.relative_to(REPO))
    return files


def module_name(rel: Path) -> str:
    """``datasets/cifar.py`` -> ``noisybench.datasets.cifar``; ``core/__init__.py`` -> ``noisybench.core``."""
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PROJECT, *parts])


def module_path(name: str) -> Path | None:
    """The file (relative to the root) a ``noisybench.*`` module is loaded from, or None.

    The same order as Python's path finder: a package (a directory with ``__init__.py``) before a
    module file; a directory without ``__init__.py`` (data, or a namespace portion) is no file.
    """
    parts = name.split(".")
    if parts[0] != PROJECT or len(parts) < 2 or parts[1] not in FLOORS:
        return None
    base = REPO.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return (base / "__init__.py").relative_to(REPO)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py").relative_to(REPO)
    return None


def is_submodule(name: str) -> bool:
    return module_path(name) is not None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _absolute(rel: Path, level: int, module: str | None) -> str:
    """The absolute name of ``from <level dots><module> import ...`` written in file ``rel``."""
    package = module_name(rel).split(".")
    if rel.name != "__init__.py":
        package.pop()
    if level > 1:
        package = package[: len(package) - (level - 1)]
    return ".".join(package + ([module] if module else []))


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name) and func.id in DYNAMIC_IMPORTERS:
        return func.id
    if isinstance(func, ast.Attribute) and func.attr in DYNAMIC_IMPORTERS:
        owner = func.value
        prefix = owner.id if isinstance(owner, ast.Name) else "..."
        return f"{prefix}.{func.attr}"
    return None


def _string_argument(node: ast.Call) -> str | None:
    arg = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value) + "{...}"  # an f-string: its literal start names the package
    return None


@dataclass(frozen=True)
class Parsed:
    imports: tuple[Import, ...]
    dynamic: tuple[DynamicImport, ...]
    lines: int


@lru_cache(maxsize=None)
def parse(rel: Path) -> Parsed:
    text = (REPO / rel).read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(rel))
    imports: list[Import] = []
    dynamic: list[DynamicImport] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                imports.append(Import(rel, node.lineno, alias.name, alias.name, 0, type_only))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _absolute(rel, node.level, node.module)
            raw = "." * node.level + (node.module or "")
            for alias in node.names:
                candidate = f"{base}.{alias.name}" if base else alias.name
                target = candidate if alias.name != "*" and is_submodule(candidate) else base
                imports.append(Import(rel, node.lineno, raw, target, node.level, type_only))
        elif isinstance(node, ast.Call):
            call = _call_name(node.func)
            if call is not None:
                dynamic.append(DynamicImport(rel, node.lineno, call, _string_argument(node)))
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(tree, False)
    return Parsed(tuple(imports), tuple(dynamic), len(text.splitlines()))


def runtime_project_imports() -> list[Import]:
    """The ``noisybench.*`` imports that run (not type-only), from every library file."""
    return [imp for rel in library_files() for imp in parse(rel).imports
            if imp.is_project and not imp.type_only]


def folder_of(rel: Path) -> str:
    return rel.parts[0]


def _report(title: str, lines: list[str]) -> None:
    pytest.fail(f"{title} ({len(lines)}):\n  " + "\n  ".join(lines), pytrace=False)


# --------------------------------------------------------------------------------------------
# The floors and the import graph
# --------------------------------------------------------------------------------------------

def test_the_source_was_found():
    files = library_files()
    missing = [folder for folder in FLOORS if not (REPO / folder / "__init__.py").is_file()]
    assert not missing, f"card folders without __init__.py under {REPO}: {missing}"
    assert len(files) > len(FLOORS), f"only {len(files)} library files found under {REPO}"


def test_imports_go_to_the_same_floor_or_below():
    """A floor imports only from itself and the floors below (type-only imports excepted)."""
    offenders = []
    for imp in runtime_project_imports():
        source = folder_of(imp.file)
        parts = imp.module.split(".")
        if len(parts) < 2:
            continue  # `import noisybench` alone: the namespace, nothing of a floor
        target = parts[1]
        if target not in FLOORS:
            offenders.append(f"{imp.where} -> {imp.module}   (no such card folder: {target!r})")
        elif FLOORS[target] > FLOORS[source]:
            offenders.append(f"{imp.where} -> {imp.module}   ({source} is floor {FLOORS[source]}, "
                             f"{target} is floor {FLOORS[target]})")
    if offenders:
        order = " < ".join(f"{name} ({floor})" for name, floor in FLOORS.items())
        _report(f"imports of a higher floor; the order is {order}", offenders)


def test_the_trainer_is_a_floor_of_its_own_below_the_rest_of_bench():
    """bench/trainer (the trainer, its recipes and the resolution step) imports nothing of bench
    outside itself: the command line, the launchers, `bench speed` and the benchmarks stand on it."""
    offenders = [f"{imp.where} -> {imp.module}" for imp in runtime_project_imports()
                 if imp.file.parts[:2] == ("bench", "trainer") and imp.module.startswith("noisybench.bench")
                 and not imp.module.startswith("noisybench.bench.trainer")]
    if offenders:
        _report("bench/trainer imports from the floors above it (the rest of bench)", offenders)


def test_the_sweeps_checks_do_not_import_a_launcher():
    """bench/checks.py (what every launcher checks first) knows no launcher: the SLURM one included."""
    offenders = [f"{imp.where} -> {imp.module}" for imp in runtime_project_imports()
                 if imp.file == Path("bench/checks.py")
                 and imp.module.startswith(("noisybench.slurm", "noisybench.bench.launch", "noisybench.bench.packing"))]
    if offenders:
        _report("bench/checks.py imports a launcher", offenders)


def test_every_project_import_names_a_module_that_exists():
    """Each ``noisybench.*`` import (runtime or type-only) names a module or package on disk:
    a module moved during a restructuring leaves no stale import behind."""
    offenders = []
    for rel in library_files():
        for imp in parse(rel).imports:
            if imp.is_project and imp.module != PROJECT and module_path(imp.module) is None:
                offenders.append(f"{imp.where} -> {imp.module}" + ("   (type-only)" if imp.type_only else ""))
    if offenders:
        _report("imports of noisybench modules that do not exist in the repository", offenders)


def import_graph() -> dict[Path, dict[Path, int]]:
    """File -> {imported file: line of the first such import}, runtime imports only."""
    graph: dict[Path, dict[Path, int]] = {rel: {} for rel in library_files()}
    for imp in runtime_project_imports():
        target = module_path(imp.module)
        if target is not None and target in graph:
            graph[imp.file].setdefault(target, imp.line)
    return graph


def strongly_connected(graph: dict[Path, dict[Path, int]]) -> list[list[Path]]:
    """Tarjan's algorithm, iterative; only the components that hold a cycle."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on_stack: set[Path] = set()
    found: list[list[Path]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        found.append(sorted(component))
    return found


def shortest_cycle(graph: dict[Path, dict[Path, int]], component: list[Path]) -> list[Path]:
    """A shortest cycle through the component's first file, staying inside the component."""
    start, members = component[0], set(component)
    previous: dict[Path, Path] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in members:
                    continue
                if child == start:
                    chain = [node]
                    while chain[-1] != start:
                        chain.append(previous[chain[-1]])
                    return [*reversed(chain), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError("a strongly connected component without a cycle")  # unreachable


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    cycles = []
    for component in strongly_connected(graph):
        chain = shortest_cycle(graph, component)
        steps = [f"{a.as_posix()}:{graph[a][b]}" for a, b in zip(chain, chain[1:])]
        text = " -> ".join(steps + [chain[-1].as_posix()])
        if len(component) > len(chain) - 1:
            text += f"   (one of {len(component)} files in this tangle: " \
                    + ", ".join(p.as_posix() for p in component) + ")"
        cycles.append(text)
    if cycles:
        _report("import cycles between library files, one per tangle "
                "(file:line is where that file imports the next one)", cycles)


def test_no_bare_card_folder_imports_and_no_dynamic_project_imports():
    """Library code imports ``noisybench.<folder>``, never ``<folder>`` (which would find Hugging
    Face ``datasets`` or the repository checkout), and registers its sub-commands with plain
    imports that a static tool (and the checks above) can follow."""
    offenders = []
    for rel in library_files():
        parsed = parse(rel)
        for imp in parsed.imports:
            if imp.level == 0 and imp.top in FLOORS:
                offenders.append(f"{imp.where} -> {imp.raw}   (bare card folder: write "
                                 f"{PROJECT}.{imp.raw})")
        for dyn in parsed.dynamic:
            name = dyn.argument
            if name is None:
                offenders.append(f"{dyn.file.as_posix()}:{dyn.line} -> {dyn.call}(<not a string literal>)   "
                                 f"(a static tool cannot tell which module; import noisybench modules plainly)")
            elif name.split(".")[0] in (PROJECT, *FLOORS):
                offenders.append(f"{dyn.file.as_posix()}:{dyn.line} -> {dyn.call}({name!r})   "
                                 f"(import it plainly)")
    if offenders:
        _report("bare or dynamic imports of card folders", offenders)


def test_core_imports_only_itself_and_the_standard_library():
    offenders = []
    for rel in library_files():
        if folder_of(rel) != "core":
            continue
        for imp in parse(rel).imports:
            if imp.type_only:
                continue
            if imp.is_project:
                if imp.module.split(".")[1:2] != ["core"]:
                    offenders.append(f"{imp.where} -> {imp.module}   (another noisybench floor)")
            elif imp.top not in sys.stdlib_module_names:
                offenders.append(f"{imp.where} -> {imp.module}   (not the standard library)")
    if offenders:
        _report("imports in core/ of something other than core and the standard library", offenders)


def test_no_library_file_is_over_the_line_limit():
    offenders = sorted(((parse(rel).lines, rel) for rel in library_files()), reverse=True)
    offenders = [f"{rel.as_posix()}: {lines} lines" for lines, rel in offenders if lines > MAX_LINES]
    if offenders:
        _report(f"library files over {MAX_LINES} lines", offenders)


# --------------------------------------------------------------------------------------------
# Packaging: every package directory gets into the wheel
# --------------------------------------------------------------------------------------------

def setup_cfg_packages() -> tuple[list[str], dict[str, str]]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg", encoding="utf-8")
    raw = config.get("options", "packages", fallback="")
    packages = [line.strip() for line in raw.splitlines() if line.strip()]
    mapping: dict[str, str] = {}
    for line in config.get("options", "package_dir", fallback="").splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            mapping[key.strip()] = value.strip()
    return packages, mapping


def mapped_directory(package: str, mapping: dict[str, str]) -> Path | None:
    """Where setuptools looks for ``package``: its own ``package_dir`` entry or its nearest
    mapped parent's, plus the remaining name parts (the ``""`` key maps the root)."""
    parts = package.split(".")
    for cut in range(len(parts), -1, -1):
        key = ".".join(parts[:cut])
        if key in mapping:
            return REPO.joinpath(mapping[key] or ".", *parts[cut:]).resolve()
    return REPO.joinpath(*parts).resolve()


def test_every_package_directory_is_listed_and_mapped_in_setup_cfg():
    packages, mapping = setup_cfg_packages()
    if any(p.startswith("find") for p in packages):
        pytest.skip("setup.cfg finds its packages (find:/find_namespace:); this test reads an explicit list")
    offenders = []
    for folder in FLOORS:
        for init in sorted((REPO / folder).rglob("__init__.py")):
            directory = init.parent
            rel = directory.relative_to(REPO)
            name = ".".join([PROJECT, *rel.parts])
            if name not in packages:
                offenders.append(f"{rel.as_posix()}/ is package {name}, missing from [options] packages")
                continue
            where = mapped_directory(name, mapping)
            if where != directory.resolve():
                shown = where.relative_to(REPO).as_posix() if where.is_relative_to(REPO) else str(where)
                offenders.append(f"{rel.as_posix()}/ is package {name}, but package_dir maps it to {shown}/")
        for directory in sorted({p.parent for p in (REPO / folder).rglob("*.py")}):
            if "__pycache__" not in directory.parts and not (directory / "__init__.py").is_file():
                rel = directory.relative_to(REPO)
                offenders.append(f"{rel.as_posix()}/ holds .py files but no __init__.py: "
                                 f"no package, so not in the wheel")
    for name in packages:
        where = mapped_directory(name, mapping)
        if not (where / "__init__.py").is_file():
            shown = where.relative_to(REPO).as_posix() if where.is_relative_to(REPO) else str(where)
            offenders.append(f"[options] packages lists {name}, but {shown}/ has no __init__.py")
    if offenders:
        _report("package directories a built wheel would miss or misplace", offenders)


# --------------------------------------------------------------------------------------------
# The tests see the installed package, never the bare folders
# --------------------------------------------------------------------------------------------

def _resolves_to_repo(entry: str) -> bool:
    try:
        return Path(entry or os.getcwd()).resolve() == REPO
    except OSError:
        return False


def test_the_repository_root_is_not_on_sys_path():
    """With the root on sys.path ``import datasets`` finds this repository's datasets/ folder
    (and `noise`, `bench` ...) instead of Hugging Face's: the tests could pass on imports that a
    user's install cannot make.  `python -m pytest` run from the root puts it there; plain
    ``pytest`` (or ``python -P -m pytest``) does not."""
    bad = [f"sys.path[{i}] = {entry!r}" + (f" (the working directory, {os.getcwd()})" if not entry else "")
           for i, entry in enumerate(sys.path) if _resolves_to_repo(entry)]
    if bad:
        _report(f"sys.path entries that resolve to the repository root {REPO}", bad)


def test_noisybench_comes_from_the_editable_install_of_this_checkout():
    spec = importlib.util.find_spec(f"{PROJECT}.datasets")  # finds, does not execute the package
    if spec is None or not spec.origin:
        pytest.fail(f"{PROJECT}.datasets is not importable: is noisybench installed (`pip install -e .`)?",
                    pytrace=False)
    origin = Path(spec.origin).resolve()
    if origin != REPO / "datasets" / "__init__.py":
        pytest.fail(f"{PROJECT}.datasets.__file__ is {origin}, not {REPO / 'datasets' / '__init__.py'}: "
                    f"the tests would run another noisybench than this checkout's "
                    f"(reinstall it editable: `pip install -e .`)", pytrace=False)


def test_the_bare_card_folders_are_not_importable_from_this_repository():
    bad = []
    for name in FLOORS:
        loaded = sys.modules.get(name)
        if loaded is not None:
            where = [*(getattr(loaded, "__path__", None) or []), getattr(loaded, "__file__", None) or ""]
            if any(w and Path(w).resolve().is_relative_to(REPO / name) for w in where):
                bad.append(f"`{name}` is already imported from {REPO / name}")
                continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        locations = [*(spec.submodule_search_locations or []), spec.origin or ""]
        if any(loc and Path(loc).resolve().is_relative_to(REPO / name) for loc in locations):
            bad.append(f"`import {name}` finds this repository's {name}/ folder ({', '.join(map(str, locations))})")
    if bad:
        _report("bare card folders importable from the checkout", bad)
