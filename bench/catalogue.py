"""What `bench list` prints about the built-in methods and models, read from their source files
rather than by importing them.

Importing a method or a network imports torch, about 1.5 s of CPU before a single line is printed;
the names and one-line descriptions are literals in the source (``@register("gce")`` over a class
whose docstring's first line describes it, ``@register_model("mlp", "two hidden layers ...")``), so
reading them with ``ast`` gives the same listing in milliseconds.  tests/test_catalogue.py holds
this listing equal to the registries' own.  Plugins are imported: only their code knows what they
register.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PLUGIN_GROUPS = ("noisybench.methods", "noisybench.models", "noisybench.datasets")


def _methods_folder() -> Path:
    # find_spec imports only the parents (the `noisybench` namespace), not noisybench.methods itself.
    spec = importlib.util.find_spec("noisybench.methods")
    return Path(next(iter(spec.submodule_search_locations)))


def _decorated(folder: Path, decorator: str) -> list[tuple[ast.Call, ast.AST]]:
    """(decorator call, decorated definition) for each ``@decorator(...)`` in the folder's modules."""
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                for call in node.decorator_list:
                    if isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", "")) == decorator:
                        found.append((call, node))
    return found


def builtin_methods() -> dict[str, str]:
    """Method name -> the first line of its class docstring, as ``describe_methods`` gives it."""
    out = {}
    for call, node in _decorated(_methods_folder(), "register"):
        out[ast.literal_eval(call.args[0])] = (ast.get_docstring(node) or "").strip().splitlines()[0]
    return dict(sorted(out.items()))


def builtin_models() -> dict[str, str]:
    """Model name -> its description, as ``describe_models`` gives it."""
    out = {}
    for call, _ in _decorated(_methods_folder() / "networks", "register_model"):
        name, description = (ast.literal_eval(a) for a in call.args[:2])
        out[name] = description
    return dict(sorted(out.items()))


def plugins_installed() -> bool:
    """Whether any installed package declares a noisybench entry point (then `bench list` imports)."""
    from noisybench.core import plugins  # the one place that finds them (tests fake it there)

    return plugins.enabled() and any(plugins.installed_entry_points(group) for group in PLUGIN_GROUPS)


def builtin_protocols() -> dict[str, str]:
    """Protocol name -> its one line: the ``PROTOCOLS`` literal of bench/trainer/protocols.py."""
    tree = ast.parse((Path(__file__).parent / "trainer" / "protocols.py").read_text())
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if getattr(target, "id", None) == "PROTOCOLS":
            return ast.literal_eval(node.value)
    raise LookupError("bench/trainer/protocols.py has no PROTOCOLS literal")
