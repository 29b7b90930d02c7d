"""Components collected from the ``register_*`` hooks, built lazily, one instance per process.

The core owns collisions: the first registration of a name wins and later ones are reported
(and listed by ``voiceseal plugins``), so a plugin can never silently replace a built-in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from voiceseal.contracts import ComponentContext, Factory
from voiceseal.errors import ComponentUnavailable, UnknownComponent
from voiceseal.plugins import PluginManager

log = logging.getLogger(__name__)

KINDS = (
    "engines",
    "vocoders",
    "adapters",
    "watermarkers",
    "speaker_encoders",
    "transcribers",
    "text_frontends",
)


@dataclass
class ComponentSpec:
    kind: str
    name: str
    factory: Factory
    plugin: str
    version: str = ""
    description: str = ""
    aliases: tuple[str, ...] = ()
    unavailable: str | None = None
    shadowed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "plugin": self.plugin,
            "version": self.version,
            "description": self.description,
            "aliases": list(self.aliases),
            "available": self.unavailable is None,
            "unavailable_reason": self.unavailable,
        }


class Components:
    """Registry of component specs plus their lazily built instances."""

    def __init__(self, pm: PluginManager, context: ComponentContext) -> None:
        self.pm = pm
        self.context = context
        self._specs: dict[str, dict[str, ComponentSpec]] = {k: {} for k in KINDS}
        self._aliases: dict[str, dict[str, str]] = {k: {} for k in KINDS}
        self._instances: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        for kind in KINDS:
            self._collect(kind)

    def _collect(self, kind: str) -> None:
        hook = getattr(self.pm.hook, f"register_{kind}")
        for impl in hook.get_hookimpls():
            plugin_name = self.pm.get_name(impl.plugin) or repr(impl.plugin)

            def register(
                name: str,
                factory: Factory,
                *,
                version: str = "",
                description: str = "",
                aliases: tuple[str, ...] = (),
                unavailable: str | None = None,
                _plugin: str = plugin_name,
            ) -> None:
                self._add(
                    ComponentSpec(
                        kind,
                        name,
                        factory,
                        _plugin,
                        version,
                        description,
                        tuple(aliases),
                        unavailable,
                    )
                )

            try:
                impl.function(register=register)
            except Exception as exc:
                log.error("plugin %s failed in register_%s: %s", plugin_name, kind, exc)

    def _add(self, spec: ComponentSpec) -> None:
        specs = self._specs[spec.kind]
        if spec.name in specs or spec.name in self._aliases[spec.kind]:
            kept = specs.get(spec.name) or specs[self._aliases[spec.kind][spec.name]]
            kept.shadowed.append(spec.plugin)
            log.warning(
                "%s %r from plugin %s ignored: already registered by %s",
                spec.kind,
                spec.name,
                spec.plugin,
                kept.plugin,
            )
            return
        specs[spec.name] = spec
        for alias in spec.aliases:
            self._aliases[spec.kind].setdefault(alias, spec.name)

    def specs(self, kind: str) -> list[ComponentSpec]:
        return list(self._specs[kind].values())

    def names(self, kind: str, *, available_only: bool = True) -> list[str]:
        return [s.name for s in self.specs(kind) if s.unavailable is None or not available_only]

    def spec(self, kind: str, name: str) -> ComponentSpec:
        resolved = self._aliases[kind].get(name, name)
        try:
            return self._specs[kind][resolved]
        except KeyError:
            known = ", ".join(sorted(self._specs[kind])) or "none"
            raise UnknownComponent(
                f"no {kind[:-1].replace('_', ' ')} named {name!r} (known: {known})"
            ) from None

    def get(self, kind: str, name: str) -> Any:
        """The component instance, built on first use (thread-safe)."""
        spec = self.spec(kind, name)
        if spec.unavailable is not None:
            raise ComponentUnavailable(
                f"{kind[:-1].replace('_', ' ')} {spec.name!r} is unavailable: {spec.unavailable}"
            )
        key = (kind, spec.name)
        inst = self._instances.get(key)
        if inst is None:
            with self._lock:
                inst = self._instances.get(key)
                if inst is None:
                    inst = spec.factory(self.context)
                    self._instances[key] = inst
        return inst

    def close(self) -> None:
        """Shutdown: call ``close()`` on every built instance that has one, newest first (an
        engine's serving threads end and its queued requests are cancelled), then forget them.
        One failing close is logged and does not stop the others."""
        with self._lock:
            instances, self._instances = list(self._instances.items()), {}
        for (kind, name), inst in reversed(instances):
            close = getattr(inst, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("closing %s %r failed", kind[:-1], name)

    def first_available(self, kind: str, preferred: Iterable[str] = ()) -> Any:
        for name in [*preferred, *self.names(kind)]:
            try:
                return self.get(kind, name)
            except (UnknownComponent, ComponentUnavailable):
                continue
        raise ComponentUnavailable(f"no {kind[:-1].replace('_', ' ')} is available")

    def describe(self) -> list[dict[str, Any]]:
        return [s.as_dict() for kind in KINDS for s in self.specs(kind)]
