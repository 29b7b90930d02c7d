"""A voice's two weight files: where they are, whether they fit together, and their checksums.

A voice gets its GPT (``.ckpt``) and SoVITS (``.pth``) file either uploaded with the registration
(the core stores them in its blob store and hands their local paths over as ``model_files``) or
named in ``engine_options`` (``{"gpt": "name.ckpt", "sovits": "name.pth"}``) relative to the
configured model folder. A name must stay inside that folder: an absolute path or a ``..``
component is refused, so a registration can never make the server read an arbitrary file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from voiceseal.errors import InvalidInput
from voiceseal_models.gpt_sovits.checkpoint import (
    SUPPORTED_SOVITS_VERSIONS,
    CheckpointError,
    CheckpointInfo,
    check_pair,
    sniff_checkpoint,
)
from voiceseal_plugins.gpt_sovits.settings import env_name

#: The roles a voice's files play; ``sovits_base`` is only meaningful for (unsupported) LoRAs,
#: and accepted so that their refusal names the real reason.
FILE_ROLES: Final = ("gpt", "sovits", "sovits_base")
_HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class ModelPair:
    """A vetted GPT/SoVITS pair; the checksums key the shared model pool."""

    gpt: Path
    sovits: Path
    gpt_sha256: str
    sovits_sha256: str
    sovits_version: str

    @property
    def is_pro(self) -> bool:
        return self.sovits_version in ("v2Pro", "v2ProPlus")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _named(model_dir: Path | None, role: str, name: object) -> Path:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"engine_options[{role!r}] must be a file name, got {name!r}")
    if model_dir is None:
        raise InvalidInput(
            f"engine_options names a {role} file ({name!r}) but no model folder is configured; "
            f"set {env_name('model_dir')} or upload the file"
        )
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise InvalidInput(
            f"engine_options[{role!r}] = {name!r}: give a path relative to the model folder, "
            "without '..'"
        )
    # The check is on the name: links placed inside the folder are the admin's own and followed.
    path = model_dir / relative
    if not path.is_file():
        raise InvalidInput(f"engine_options[{role!r}]: no file {name!r} in the model folder")
    return path


def resolve_files(
    uploaded: Mapping[str, Path], options: Mapping[str, Any], model_dir: Path | None
) -> dict[str, Path]:
    """The voice's files by role: uploaded ones first, else those named in ``options``."""
    unknown = sorted(set(uploaded) - set(FILE_ROLES))
    if unknown:
        raise InvalidInput(f"unexpected model file(s) {unknown}; gpt-sovits takes gpt and sovits")
    files = dict(uploaded)
    for role in FILE_ROLES:
        if role in options:
            if role in files:
                raise InvalidInput(
                    f"the {role} file was both uploaded and named in engine_options; give one"
                )
            files[role] = _named(model_dir, role, options[role])
    missing = [r for r in ("gpt", "sovits") if r not in files]
    if missing:
        raise InvalidInput(
            f"a gpt-sovits voice needs a GPT (.ckpt) and a SoVITS (.pth) file; missing "
            f"{' and '.join(missing)}: upload gpt_model/sovits_model, or name them in "
            'engine_options as {"gpt": "<file>.ckpt", "sovits": "<file>.pth"} under '
            f"{env_name('model_dir')}"
        )
    return files


def _sniff(role: str, path: Path) -> CheckpointInfo:
    try:
        return sniff_checkpoint(path)
    except CheckpointError as exc:
        raise InvalidInput(f"the {role} file is refused: {exc}") from None


def vet_pair(files: Mapping[str, Path]) -> ModelPair:
    """Refuse files that are not checkpoints, unsafe, mismatched or of an unsupported kind.

    Only the headers and pickles are read here (no tensor bytes), so a bad pair is refused fast.
    """
    gpt = _sniff("GPT", files["gpt"])
    sovits = _sniff("SoVITS", files["sovits"])
    base = _sniff("SoVITS base", files["sovits_base"]) if "sovits_base" in files else None
    try:
        check_pair(gpt, sovits, sovits_base=base)
    except CheckpointError as exc:
        raise InvalidInput(f"GPT/SoVITS pair refused: {exc}") from None
    if not gpt.supported:
        raise InvalidInput(
            "GPT file refused: v1 GPT files (512-phoneme table) are not supported yet; use a "
            "v2-family GPT (732 phonemes, e.g. s1bert25hz-5kh or s1v3)"
        )
    if not sovits.supported:
        what = f"{sovits.version} LoRA" if sovits.is_lora else sovits.version
        raise InvalidInput(
            f"SoVITS file refused: {what} files are not supported yet "
            f"(supported: {', '.join(SUPPORTED_SOVITS_VERSIONS)})"
        )
    return ModelPair(
        gpt=files["gpt"],
        sovits=files["sovits"],
        gpt_sha256=file_sha256(files["gpt"]),
        sovits_sha256=file_sha256(files["sovits"]),
        sovits_version=sovits.version,
    )
