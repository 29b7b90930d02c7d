"""The plugin manager: built from a factory, entry points loaded on demand, under env control.

- ``VOICESEAL_PLUGINS``: comma-separated allowlist of entry-point names; when set, nothing else loads.
- ``VOICESEAL_DISABLE_PLUGINS``: comma-separated blocklist, applied after the allowlist.
- ``VOICESEAL_TRACE_PLUGINS=1``: log every hook call.

A plugin that fails to import is logged and skipped; it never takes the process down.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib.metadata import entry_points, version
from typing import Any

import pluggy

from voiceseal import hookspecs

log = logging.getLogger(__name__)

GROUP = "voiceseal"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    module: str
    version: str
    hooks: tuple[str, ...]
    status: str = "loaded"
    error: str | None = None


def _names(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus a record of what was skipped and why (for ``voiceseal plugins``)."""

    def __init__(self) -> None:
        super().__init__(GROUP)
        self.add_hookspecs(hookspecs)
        self.skipped: list[PluginInfo] = []

    def load_entry_points(self) -> None:
        allow = _names("VOICESEAL_PLUGINS")
        block = _names("VOICESEAL_DISABLE_PLUGINS") or set()
        for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else ""
            ver = ep.dist.version if ep.dist else ""
            if (allow is not None and ep.name not in allow) or ep.name in block:
                self.skipped.append(PluginInfo(ep.name, ep.value, ver, (), status="disabled"))
                continue
            if self.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
                self.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not break the platform
                log.error("plugin %s (%s) failed to load: %s", ep.name, dist, exc)
                self.skipped.append(
                    PluginInfo(ep.name, ep.value, ver, (), status="failed", error=str(exc))
                )

    def describe(self) -> list[PluginInfo]:
        """Loaded plugins with the hooks they implement, then the skipped ones."""
        dist_versions = {
            ep.name: (ep.dist.version if ep.dist else "") for ep in entry_points(group=GROUP)
        }
        out: list[PluginInfo] = []
        for name, plugin in sorted(self.list_name_plugin(), key=lambda p: p[0]):
            hooks = tuple(sorted(h.name for h in self.get_hookcallers(plugin) or ()))
            module = getattr(plugin, "__name__", type(plugin).__module__)
            ver = dist_versions.get(name) or getattr(plugin, "__version__", "") or _own_version()
            out.append(PluginInfo(name, module, ver, hooks))
        return out + self.skipped


def _own_version() -> str:
    try:
        return version("voiceseal")
    except Exception:
        return ""


def get_plugin_manager(
    *, load_entry_points: bool = True, extra: list[Any] | None = None
) -> PluginManager:
    """Build a fresh manager. Tests pass ``extra`` plugins and may skip entry points entirely."""
    pm = PluginManager()
    if os.environ.get("VOICESEAL_TRACE_PLUGINS"):
        pm.trace.root.setwriter(log.info)
        pm.enable_tracing()
    for plugin in extra or []:
        pm.register(plugin)
    if load_entry_points:
        pm.load_entry_points()
    return pm
