"""Build shim: maps the three top-level folders to their import names.

`platform/` cannot be found by setuptools' automatic discovery under the name `voiceseal`
(and must never be importable as `platform`, a standard-library module), so the packages are
listed here by walking each folder.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {"voiceseal": "platform", "voiceseal_plugins": "plugins", "voiceseal_models": "models"}


def _packages() -> list[str]:
    found: list[str] = []
    for name, folder in ROOTS.items():
        base = Path(__file__).parent / folder
        for init in sorted(base.rglob("__init__.py")):
            rel = init.parent.relative_to(base)
            found.append(".".join((name, *rel.parts)) if rel.parts else name)
    return found


setup(package_dir=ROOTS, packages=_packages())
