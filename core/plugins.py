"""Plugins: methods, datasets and models that other installed packages add, found by entry point.

A package declares an entry point in one of :data:`GROUPS` (as pytest and flake8 plugins do)::

    [project.entry-points."noisybench.methods"]
    bootstrap = "noisybench_bootstrap.method"

and importing what it names registers the method (dataset, model) through the ordinary
decorator.  Each registry calls :func:`load` for its own group before it answers a question
(which names exist, what a name is), so every entry path -- the command line, a packed worker,
a submitit job -- finds the plugins by their entry points, never by pickled code.

A plugin that fails to import is left out with one warning line on stderr (the built-ins and
the other plugins still work); asking for its name is a one-line error saying why it is missing.
A name registered twice, where a plugin is one of the two, is a one-line BenchError naming both.
Standard library only: this is the lowest floor.
"""
from __future__ import annotations

import importlib.metadata
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterable

from noisybench.core import __version__
from noisybench.core.errors import BenchError

# Entry-point group -> what its names are called in messages.
GROUPS: dict[str, str] = {"noisybench.methods": "method", "noisybench.datasets": "dataset",
                          "noisybench.models": "model"}
# Set to 1 to load no plugin at all (a baseline of the built-ins, or an environment a plugin breaks).
DISABLE_ENV = "NOISYBENCH_NO_PLUGINS"
# The failures already warned about, for the worker processes a sweep starts (they inherit the
# environment): the user sees each warning once, not once per worker.
WARNED_ENV = "NOISYBENCH_PLUGIN_WARNED"


@dataclass(frozen=True)
class Plugin:
    """One entry point and the installed distribution that declares it."""

    group: str
    entry_point: str  # the entry point's name (by convention, the name it registers)
    target: str  # what it names: "module" or "module:object"
    package: str  # the distribution's name, as pip knows it
    version: str

    @property
    def requirement(self) -> str:
        """``package==version``: what a trial's spec records, so a new version is a new trial."""
        return f"{self.package}=={self.version}"

    @property
    def module(self) -> str:
        return self.target.split(":")[0].strip()

    def describe(self) -> str:
        return f"plugin {self.package} {self.version} (entry point {self.entry_point} = {self.target})"


@dataclass
class _GroupState:
    loaded: bool = False
    loading: Plugin | None = None
    origins: dict[str, Plugin] = field(default_factory=dict)  # registered name -> its plugin
    failures: dict[Plugin, str] = field(default_factory=dict)  # plugin -> one-line error
    clash: BenchError | None = None


_STATE: dict[str, _GroupState] = {}


def _state(group: str) -> _GroupState:
    if group not in GROUPS:
        raise ValueError(f"unknown plugin group {group!r}; one of {', '.join(GROUPS)}")
    return _STATE.setdefault(group, _GroupState())


def enabled() -> bool:
    """False where $NOISYBENCH_NO_PLUGINS is set (to anything but 0)."""
    return os.environ.get(DISABLE_ENV, "") in ("", "0")


def installed_entry_points(group: str) -> list:
    """The entry points installed in ``group`` (tests replace this function)."""
    return list(importlib.metadata.entry_points(group=group))


def _plugin(group: str, entry_point) -> Plugin:
    dist = getattr(entry_point, "dist", None)
    name = (dist.metadata["Name"] if dist is not None else None) or "an unknown package"
    version = (dist.version if dist is not None else None) or "0"
    return Plugin(group, entry_point.name, entry_point.value, name, version)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def load(group: str, forget: Callable[[str], object]) -> None:
    """Import every entry point of ``group`` once per process; ``forget(name)`` drops a name a
    plugin registered before its import failed.  Raises the BenchError of a name clash (again on
    every later call: the registry stays ambiguous until one package goes)."""
    state = _state(group)
    if state.clash is not None:
        raise state.clash
    if state.loaded:
        return
    state.loaded = True  # first: a plugin that asks the registry while it loads must not recurse
    if not enabled():
        return
    for entry_point in installed_entry_points(group):
        plugin = _plugin(group, entry_point)
        state.loading = plugin
        try:
            entry_point.load()
        except BenchError as err:
            state.clash = err
            raise
        except Exception as err:  # noqa: BLE001 -- any import error of a plugin leaves it out, nothing else
            for name in [n for n, p in state.origins.items() if p == plugin]:
                forget(name)
                del state.origins[name]
            state.failures[plugin] = _one_line(err)
            _warn(plugin, state.failures[plugin])
        finally:
            state.loading = None


def _warn(plugin: Plugin, error: str) -> None:
    key = f"{plugin.group}:{plugin.entry_point}"
    warned = set(filter(None, os.environ.get(WARNED_ENV, "").split(",")))
    if key in warned:
        return
    os.environ[WARNED_ENV] = ",".join(sorted(warned | {key}))
    kind = GROUPS[plugin.group]
    print(f"bench: warning: {plugin.describe()} failed to import and is left out ({error}); the other "
          f"{kind}s work -- fix or uninstall {plugin.package}", file=sys.stderr, flush=True)


def _plugin_of_module(group: str, module: str) -> Plugin | None:
    """The plugin whose package holds ``module``, for a plugin imported before discovery ran."""
    if module == "noisybench" or module.startswith("noisybench."):
        return None
    top = module.split(".")[0]
    for entry_point in installed_entry_points(group):
        plugin = _plugin(group, entry_point)
        if plugin.module.split(".")[0] == top:
            return plugin
    return None


def _who(plugin: Plugin | None, module: str) -> str:
    return plugin.describe() if plugin is not None else f"noisybench {__version__} (built-in, {module})"


def claim(group: str, name: str, module: str, taken_by: str | None = None) -> None:
    """Called by a registry's decorator before it registers ``name`` (defined in ``module``).

    ``taken_by``: the module of what already holds the name, None if it is free.  A clash between
    two built-ins stays a ValueError (a bug in noisybench); one involving a plugin is the user's
    installation, a one-line BenchError naming both packages.
    """
    state = _state(group)
    plugin = state.loading or _plugin_of_module(group, module)
    kind = GROUPS[group]
    if taken_by is not None:
        first = state.origins.get(name)
        if first is None and plugin is None:
            raise ValueError(f"{kind} {name!r} is registered twice ({taken_by}, {module})")
        raise BenchError(f"{kind} {name!r} is registered twice: by {_who(first, taken_by)} and by "
                         f"{_who(plugin, module)}; uninstall one of them or rename the plugin's {kind}")
    if plugin is not None:
        state.origins[name] = plugin


def origin(group: str, name: str) -> Plugin | None:
    """The plugin that registered ``name``; None for a built-in (or a name registered in code)."""
    return _state(group).origins.get(name)


def failures(group: str) -> dict[Plugin, str]:
    return dict(_state(group).failures)


def missing_hint(group: str, name: str) -> str:
    """For an unknown ``name``: why a plugin's name is missing ("" when no plugin failed).

    The entry point's name is the registered name by convention, so a failed entry point of that
    name explains it; otherwise every failed plugin of the group is named."""
    failed = _state(group).failures
    for plugin, error in failed.items():
        if plugin.entry_point == name:
            return f"; it comes from {plugin.describe()}, which failed to import ({error}): fix or reinstall it"
    if failed:
        return "; plugins that failed to import: " + ", ".join(f"{p.package} {p.version}" for p in failed)
    return ""


def marker(group: str, name: str) -> str:
    """`` [plugin package version]`` after a plugin's name in listings ("" for a built-in)."""
    plugin = origin(group, name)
    return f" [plugin {plugin.package} {plugin.version}]" if plugin is not None else ""


def requirements(plugins: Iterable[Plugin | None]) -> str | None:
    """The sorted ``package==version`` of the given plugins joined by commas, None if there is none:
    what a TrialSpec's ``plugin`` field holds."""
    found = sorted({p.requirement for p in plugins if p is not None})
    return ",".join(found) if found else None
