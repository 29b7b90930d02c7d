"""The dependency rules of DESIGN.md §1, checked on the source and in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "voiceseal": ROOT / "platform",
    "voiceseal_plugins": ROOT / "plugins",
    "voiceseal_models": ROOT / "models",
}


def imported_modules(folder: Path) -> dict[str, set[str]]:
    """Every absolute module a file imports, at any depth (lazy imports inside functions count)."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{file}: {name}"
        for file, names in imported_modules(folder).items()
        for name in names
        if name.split(".")[0] in forbidden
    )


def test_models_never_import_platform_or_plugins() -> None:
    assert offenders(PACKAGES["voiceseal_models"], ("voiceseal", "voiceseal_plugins")) == []


def test_platform_never_imports_plugins() -> None:
    assert offenders(PACKAGES["voiceseal"], ("voiceseal_plugins",)) == []


def test_platform_is_never_importable_as_platform() -> None:
    assert not (ROOT / "platform.py").exists()
    # Even with the repo root first on sys.path, `platform` is the standard library's.
    code = "import platform, sys; print(platform.__file__); platform.system()"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "site-packages" not in out.stdout and str(ROOT / "platform") not in out.stdout


@pytest.mark.parametrize(
    "module",
    [
        "voiceseal",
        "voiceseal.api.app",
        "voiceseal.cli.main",
        "voiceseal.orchestrator",
        "voiceseal_plugins",
    ],
)
def test_importing_the_platform_does_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False", f"importing {module} imported torch"
