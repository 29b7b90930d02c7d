"""Official GPT-SoVITS weight files: safe loading, version detection, pairing and manifests.

Two formats (see docs/GPT-SOVITS.md §3):

* GPT / s1 `.ckpt`: `torch.save` zip of `{"weight": {"model.<name>": fp16}, "config": dict,
  "info": "GPT-eN"}`. The phoneme table (v1: 512 rows, v2: 732) is the only version marker.
* SoVITS / s2 `.pth`: `{"weight": {name: fp16}, "config": utils.HParams, "info": str,
  ["lora_rank": int]}`. `my_save2` overwrites the zip's leading "PK" with a two-byte version
  tag ("05" v2Pro, "06" v2ProPlus, "03"/"04" v3/v4 LoRA; "00"/"01"/"02" are defined but never
  written). The version is then refined from the weights themselves: no
  `enc_p.text_embedding.weight` means v3/v4, 322 rows means v1, an `sv_emb` layer means
  v2Pro(Plus), and a 768-channel generator input means v2ProPlus.

Everything is read through `torch_zip`, which never unpickles anything outside a short
allow-list. Unlike the official loader, the file size is never used to guess the version.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from voiceseal_models.gpt_sovits.errors import CheckpointError, UnsupportedCheckpointError
from voiceseal_models.gpt_sovits.torch_zip import TensorStub, open_zip, read_archive, to_plain

__all__ = [
    "HEAD_TAGS",
    "PRETRAINED_MD5",
    "SUPPORTED_SOVITS_VERSIONS",
    "CheckpointError",
    "CheckpointInfo",
    "GPTCheckpoint",
    "ManifestMismatchError",
    "SoVITSCheckpoint",
    "UnsupportedCheckpointError",
    "check_pair",
    "init_device",
    "load_gpt_checkpoint",
    "load_manifest",
    "load_sovits_checkpoint",
    "sniff_checkpoint",
    "verify_against_manifest",
]

Source = str | os.PathLike[str] | bytes | bytearray | memoryview
SoVITSVersion = Literal["v1", "v2", "v2Pro", "v2ProPlus", "v3", "v4"]

# Two-byte tags written over "PK" by the official `my_save2`: (SoVITS version, is_lora).
HEAD_TAGS: dict[bytes, tuple[SoVITSVersion, bool]] = {
    b"00": ("v1", False),
    b"01": ("v2", False),
    b"02": ("v3", False),
    b"03": ("v3", True),
    b"04": ("v4", True),
    b"05": ("v2Pro", False),
    b"06": ("v2ProPlus", False),
}

# md5 of the first 8192 bytes of the official pretrained SoVITS files (as listed in the
# official process_ckpt.py). Used only to name a file and to tell the v3 base from the v4
# base, whose tensors have identical names and shapes; every other decision is by content.
PRETRAINED_MD5: dict[str, tuple[str, SoVITSVersion]] = {
    "dc3c97e17592963677a4a1681f30c653": ("s2G488k.pth", "v1"),
    "6642b37f3dbb1f76882b69937c95a5f3": ("s2G2333k.pth", "v2"),
    "43797be674a37c1c83ee81081941ed0f": ("s2Gv3.pth", "v3"),
    "4f26b9476d0c5033e04162c486074374": ("s2Gv4.pth", "v4"),
    "c7e9fce2223f3db685cdfa1e6368728a": ("s2Gv2Pro.pth", "v2Pro"),
    "66b313e39455b57ab1b0bc0b239c9d0a": ("s2Gv2ProPlus.pth", "v2ProPlus"),
}

SUPPORTED_SOVITS_VERSIONS: tuple[SoVITSVersion, ...] = ("v2", "v2Pro", "v2ProPlus")

_V1_SOVITS_SYMBOLS = 322
_V2_SOVITS_SYMBOLS = 732
_V1_GPT_PHONEMES = 512
_V2_GPT_PHONEMES = 732
_V2PROPLUS_UPSAMPLE_CHANNELS = 768
_GPT_PREFIX = "model."


@dataclass(frozen=True)
class CheckpointInfo:
    """What a weight file is, decided from its header and contents (no tensor bytes read).

    `symbols` is the phoneme table the file was trained with ("v1": 322 SoVITS / 512 GPT
    symbols; "v2": the 732-symbol table shared by v2, v2Pro(Plus), v3 and v4). A GPT file and a
    SoVITS file can only be used together when their `symbols` agree.
    """

    kind: Literal["gpt", "sovits"]
    version: str
    symbols: Literal["v1", "v2"]
    is_lora: bool
    lora_rank: int | None
    head: str
    info: str
    n_tensors: int
    pretrained_name: str | None
    path: Path | None

    @property
    def supported(self) -> bool:
        """True when this engine can run the file today."""
        if self.kind == "gpt":
            return self.symbols == "v2"
        return self.version in SUPPORTED_SOVITS_VERSIONS and not self.is_lora


@dataclass
class GPTCheckpoint:
    """An s1 (text-to-semantic) file: names exactly as stored, i.e. with the `model.` prefix."""

    weights: dict[str, torch.Tensor]
    config: dict[str, Any]
    info: str
    path: Path | None

    @property
    def symbols(self) -> Literal["v1", "v2"]:
        rows = self.weights[f"{_GPT_PREFIX}ar_text_embedding.word_embeddings.weight"].shape[0]
        return "v1" if rows == _V1_GPT_PHONEMES else "v2"


@dataclass
class SoVITSCheckpoint:
    """An s2 (SoVITS) file; `config` is the pickled HParams tree as plain nested dicts."""

    weights: dict[str, torch.Tensor]
    config: dict[str, Any]
    info: str
    version: SoVITSVersion
    is_lora: bool
    lora_rank: int | None
    path: Path | None


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Raw:
    """The unpickled top level of a file plus where it came from."""

    top: dict[str, Any]
    head: bytes
    md5_8k: str
    path: Path | None
    source: str


def init_device(
    device: torch.device | str, weights: Mapping[str, torch.Tensor] | None = None
) -> torch.device:
    """Where to build a model whose every tensor then comes from a checkpoint (use it as a
    context manager around the constructor): the target GPU when it has room for a float32 copy
    of ``weights`` to spare, else the meta device.

    The random initialisation is wasted either way. On the meta device it allocates nothing,
    but the first operation there loads PyTorch's Python meta kernels, 1-3 s of a fresh
    process holding the GIL (on an H100 machine it slowed a scheduler's warm-up running on
    another thread); on a GPU it costs milliseconds, and memory that the load frees again,
    which a GPU already filled with other models may not have."""
    target = torch.device(device)
    if target.type != "cuda":
        return torch.device("meta")
    if weights is not None:
        needed = 4 * sum(t.numel() for t in weights.values())
        free, _ = torch.cuda.mem_get_info(target)
        if free < 2 * needed:  # the random copy, then the loaded weights beside it
            return torch.device("meta")
    return target


def _read(src: Source, *, meta_only: bool) -> _Raw:
    path: Path | None = None
    raw: io.BufferedIOBase
    if isinstance(src, bytes | bytearray | memoryview):
        raw, source = io.BytesIO(bytes(src)), "<bytes>"
    else:
        path = Path(src)
        source = str(path)
        if not path.is_file():
            raise CheckpointError(f"{source}: no such checkpoint file")
        raw = path.open("rb")
    with raw:
        first = raw.read(8192)
        head = first[:2]
        if len(first) == 0:
            raise CheckpointError(f"{source}: empty file, not a checkpoint")
        if len(first) < 22:  # the smallest possible zip (an empty end-of-directory record)
            raise CheckpointError(f"{source}: only {len(first)} bytes, too short for a checkpoint")
        if head != b"PK" and head not in HEAD_TAGS:
            if first[:1] == b"\x80":
                raise CheckpointError(
                    f"{source}: legacy (pre-zip, torch<1.6) serialization; GPT-SoVITS files "
                    "are torch zip archives, re-save it with a current torch"
                )
            raise CheckpointError(
                f"{source}: not a checkpoint: starts with {head!r}, expected a torch zip "
                f"archive (b'PK') or a GPT-SoVITS version tag ({', '.join(map(repr, HEAD_TAGS))})"
            )
        md5 = hashlib.md5(first, usedforsecurity=False).hexdigest()
        raw.seek(0)
        with open_zip(raw, source=source) as archive:
            top = read_archive(archive, source=source, meta_only=meta_only)
    if not isinstance(top, dict):
        held = "Tensor" if isinstance(top, torch.Tensor | TensorStub) else type(top).__name__
        raise CheckpointError(
            f"{source}: a torch file holding {held}, not a GPT-SoVITS checkpoint "
            "(expected a dict with 'weight', 'config' and 'info')"
        )
    missing = [k for k in ("weight", "config") if k not in top]
    if missing:
        raise CheckpointError(
            f"{source}: a torch file but not a GPT-SoVITS weight file: top-level keys "
            f"{sorted(map(str, top))}, missing {missing}"
        )
    weights = top["weight"]
    if not isinstance(weights, dict) or not weights:
        raise CheckpointError(f"{source}: 'weight' is not a non-empty dict of tensors")
    for name, value in weights.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor | TensorStub):
            raise CheckpointError(f"{source}: weight entry {name!r} is not a named tensor")
    return _Raw(top=top, head=head, md5_8k=md5, path=path, source=source)


class _Shaped(Protocol):
    @property
    def shape(self) -> Any: ...


def _shape(t: _Shaped) -> tuple[int, ...]:
    return tuple(int(n) for n in t.shape)


def _is_gpt(weights: Mapping[str, _Shaped]) -> bool:
    return f"{_GPT_PREFIX}ar_predict_layer.weight" in weights


def _is_sovits(weights: Mapping[str, _Shaped]) -> bool:
    return any(k.startswith(("enc_p.", "cfm.", "dec.", "ref_enc.")) for k in weights)


def _info_text(raw: _Raw) -> str:
    info = raw.top.get("info", "")
    return info if isinstance(info, str) else str(info)


def _gpt_symbols(raw: _Raw) -> Literal["v1", "v2"]:
    weights = raw.top["weight"]
    key = f"{_GPT_PREFIX}ar_text_embedding.word_embeddings.weight"
    if key not in weights:
        raise CheckpointError(f"{raw.source}: GPT file without {key}")
    rows = _shape(weights[key])[0]
    config = raw.top["config"]
    declared = (
        config.get("model", {}).get("phoneme_vocab_size") if isinstance(config, dict) else None
    )
    if declared is not None and declared != rows:
        raise CheckpointError(
            f"{raw.source}: config says phoneme_vocab_size={declared} but {key} has {rows} rows"
        )
    if rows == _V1_GPT_PHONEMES:
        return "v1"
    if rows == _V2_GPT_PHONEMES:
        return "v2"
    raise CheckpointError(
        f"{raw.source}: GPT phoneme table has {rows} rows; official files have "
        f"{_V1_GPT_PHONEMES} (v1) or {_V2_GPT_PHONEMES} (v2 and later)"
    )


def _config_version(config: object) -> str | None:
    if not isinstance(config, dict):
        return None
    model = config.get("model")
    for candidate in (
        model.get("version") if isinstance(model, dict) else None,
        config.get("version"),
    ):
        if isinstance(candidate, str):
            return candidate
    return None


def _sovits_version(raw: _Raw) -> tuple[SoVITSVersion, bool, int | None]:
    """Decide (version, is_lora, lora_rank) from the header tag and the tensors."""
    weights = raw.top["weight"]
    tag = HEAD_TAGS.get(raw.head)
    rank = raw.top.get("lora_rank")
    if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0):
        raise CheckpointError(f"{raw.source}: lora_rank {rank!r} is not a positive integer")
    is_lora = rank is not None or (tag is not None and tag[1])
    text_emb = weights.get("enc_p.text_embedding.weight")
    pretrained = PRETRAINED_MD5.get(raw.md5_8k)

    version: SoVITSVersion
    if is_lora or text_emb is None:
        # v3/v4 (CFM decoder): no text embedding table; their shapes are identical, so only
        # the tag, the pretrained hash or the stored config can tell them apart.
        if not is_lora and not any(k.startswith("cfm.") for k in weights):
            raise CheckpointError(
                f"{raw.source}: SoVITS file has neither enc_p.text_embedding.weight (v1/v2 family) "
                "nor cfm.* tensors (v3/v4): incomplete or not an official file"
            )
        hints = [
            tag[0] if tag is not None and tag[0] in ("v3", "v4") else None,
            pretrained[1] if pretrained is not None else None,
            _config_version(raw.top["config"]),
        ]
        found = next((h for h in hints if h in ("v3", "v4")), None)
        if found is None:
            raise CheckpointError(
                f"{raw.source}: a v3/v4 SoVITS file (CFM decoder) whose header, hash and config "
                "do not say which of the two it is"
            )
        version = "v3" if found == "v3" else "v4"
    else:
        rows = _shape(text_emb)[0]
        if rows == _V1_SOVITS_SYMBOLS:
            version = "v1"
        elif rows != _V2_SOVITS_SYMBOLS:
            raise CheckpointError(
                f"{raw.source}: enc_p.text_embedding.weight has {rows} rows; official files have "
                f"{_V1_SOVITS_SYMBOLS} (v1) or {_V2_SOVITS_SYMBOLS} (v2 family)"
            )
        elif "sv_emb.weight" in weights:
            conv_pre = weights.get("dec.conv_pre.weight")
            channels = _shape(conv_pre)[0] if conv_pre is not None else None
            version = "v2ProPlus" if channels == _V2PROPLUS_UPSAMPLE_CHANNELS else "v2Pro"
        else:
            version = "v2"
    if tag is not None and tag[0] != version:
        raise CheckpointError(
            f"{raw.source}: header tag {raw.head.decode('ascii')} says {tag[0]} but the weights "
            f"are those of a {version} model"
        )
    return version, is_lora, rank


def _classify(raw: _Raw) -> CheckpointInfo:
    weights = raw.top["weight"]
    pretrained = PRETRAINED_MD5.get(raw.md5_8k)
    head, info, count = raw.head.decode("ascii", "replace"), _info_text(raw), len(weights)
    if _is_gpt(weights):
        if raw.head != b"PK":
            raise CheckpointError(
                f"{raw.source}: GPT weights behind a SoVITS version tag {raw.head!r}: not an "
                "official file"
            )
        symbols = _gpt_symbols(raw)
        return CheckpointInfo(
            kind="gpt",
            version=symbols,
            symbols=symbols,
            is_lora=False,
            lora_rank=None,
            head=head,
            info=info,
            n_tensors=count,
            pretrained_name=None,
            path=raw.path,
        )
    if _is_sovits(weights):
        version, is_lora, rank = _sovits_version(raw)
        return CheckpointInfo(
            kind="sovits",
            version=version,
            symbols="v1" if version == "v1" else "v2",
            is_lora=is_lora,
            lora_rank=rank,
            head=head,
            info=info,
            n_tensors=count,
            pretrained_name=pretrained[0] if pretrained is not None else None,
            path=raw.path,
        )
    sample = ", ".join(sorted(weights)[:5])
    raise CheckpointError(
        f"{raw.source}: a weight dict, but neither a GPT-SoVITS GPT (model.ar_predict_layer.*) "
        f"nor a SoVITS model (enc_p.*, dec.*, cfm.*); first names: {sample}"
    )


def sniff_checkpoint(src: Source) -> CheckpointInfo:
    """Classify a weight file from its header and pickle only (tensor bytes are not read)."""
    return _classify(_read(src, meta_only=True))


def load_gpt_checkpoint(src: Source, *, allow_unsupported: bool = False) -> GPTCheckpoint:
    """Load an official GPT (s1) file. fp16 tensors are returned as stored.

    Raises `UnsupportedCheckpointError` for v1 (512-phoneme) files unless `allow_unsupported`.
    """
    raw = _read(src, meta_only=False)
    info = _classify(raw)
    if info.kind != "gpt":
        raise CheckpointError(
            f"{raw.source}: this is a SoVITS ({info.version}) file, not a GPT file"
        )
    if not info.supported and not allow_unsupported:
        raise UnsupportedCheckpointError(
            f"{raw.source}: v1 GPT files (512-phoneme table) are not yet supported; "
            "use a v2-family GPT (732 phonemes, e.g. s1bert25hz-5kh or s1v3)"
        )
    config = to_plain(raw.top["config"])
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{raw.source}: GPT config has no 'model' section")
    return GPTCheckpoint(
        weights=dict(raw.top["weight"]), config=config, info=info.info, path=raw.path
    )


def load_sovits_checkpoint(src: Source, *, allow_unsupported: bool = False) -> SoVITSCheckpoint:
    """Load an official SoVITS (s2) file, restoring "PK" over a version tag in memory.

    Raises `UnsupportedCheckpointError` for v1, v3, v4 and LoRA files unless
    `allow_unsupported`.
    """
    raw = _read(src, meta_only=False)
    info = _classify(raw)
    if info.kind != "sovits":
        raise CheckpointError(f"{raw.source}: this is a GPT file, not a SoVITS file")
    if not info.supported and not allow_unsupported:
        what = f"{info.version} LoRA" if info.is_lora else info.version
        raise UnsupportedCheckpointError(
            f"{raw.source}: SoVITS {what} files are not yet supported "
            f"(supported: {', '.join(SUPPORTED_SOVITS_VERSIONS)})"
        )
    config = to_plain(raw.top["config"])
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{raw.source}: SoVITS config is {type(config).__name__}, not HParams"
        )
    return SoVITSCheckpoint(
        weights=dict(raw.top["weight"]),
        config=config,
        info=info.info,
        version=info.version,  # type: ignore[arg-type]  # narrowed by _sovits_version
        is_lora=info.is_lora,
        lora_rank=info.lora_rank,
        path=raw.path,
    )


def _as_info(item: CheckpointInfo | Source) -> CheckpointInfo:
    return item if isinstance(item, CheckpointInfo) else sniff_checkpoint(item)


def check_pair(
    gpt: CheckpointInfo | Source,
    sovits: CheckpointInfo | Source,
    *,
    sovits_base: CheckpointInfo | Source | None = None,
) -> None:
    """Refuse GPT/SoVITS combinations that cannot work together.

    Checks the roles (a GPT file first, a SoVITS file second), the phoneme table (v1 GPT files
    only drive v1 SoVITS files and vice versa) and that a LoRA file comes with its base model
    of the same version. Raises `CheckpointError` with the reason.
    """
    g, s = _as_info(gpt), _as_info(sovits)
    if g.kind != "gpt":
        raise CheckpointError(
            f"{g.path or 'first file'} is a SoVITS file where a GPT file is expected"
        )
    if s.kind != "sovits":
        raise CheckpointError(
            f"{s.path or 'second file'} is a GPT file where a SoVITS file is expected"
        )
    if g.symbols != s.symbols:
        raise CheckpointError(
            f"GPT file uses the {g.symbols} phoneme table but the SoVITS file ({s.version}) uses "
            f"the {s.symbols} table: they were not trained together"
        )
    if s.is_lora:
        if sovits_base is None:
            raise CheckpointError(
                f"the SoVITS file is a {s.version} LoRA (rank {s.lora_rank}); it needs its base "
                f"model ({'s2Gv3.pth' if s.version == 'v3' else 's2Gv4.pth'})"
            )
        b = _as_info(sovits_base)
        if b.kind != "sovits" or b.is_lora or b.version != s.version:
            raise CheckpointError(
                f"the LoRA is for SoVITS {s.version} but the base given is a "
                f"{b.kind} {b.version}{' LoRA' if b.is_lora else ''} file"
            )
    elif sovits_base is not None:
        raise CheckpointError("a base model was given but the SoVITS file is not a LoRA")


# --------------------------------------------------------------------------- manifests


class ManifestMismatchError(CheckpointError):
    """A state dict does not match a manifest; lists every offending name."""

    def __init__(
        self,
        message: str,
        *,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched


def load_manifest(manifest: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Read a `manifest_*.json` (or pass a dict through) and check it has a tensor list."""
    data = manifest
    if not isinstance(manifest, Mapping):
        try:
            data = json.loads(Path(manifest).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{manifest}: cannot read manifest: {exc}") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("tensors"), list):
        raise CheckpointError("manifest has no 'tensors' list of [name, shape, dtype]")
    return dict(data)


def _manifest_shapes(rows: Iterable[Any], prefix_strip: str) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for row in rows:
        name, shape = row[0], row[1]
        if prefix_strip and name.startswith(prefix_strip):
            name = name[len(prefix_strip) :]
        shapes[name] = tuple(int(n) for n in shape)
    return shapes


def _listing(title: str, items: list[str], limit: int = 20) -> str:
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"{len(items)} {title}: " + ", ".join(items[:limit]) + more


def verify_against_manifest(
    weights: Mapping[str, _Shaped],
    manifest: str | os.PathLike[str] | Mapping[str, Any],
    *,
    prefix_strip: str = "",
) -> None:
    """Check every name and shape of `weights` against a full-size manifest.

    `prefix_strip` is removed from the manifest's names before comparing, e.g. "model." to
    check a GPT state dict whose prefix was already stripped. Tensors the manifest lists as
    optional (`enc_q_tensors_not_in_finetuned_files`: the posterior encoder, which fine-tuned
    files drop) may be present or absent but must have the right shape when present. Raises
    `ManifestMismatchError` listing missing, unexpected and mis-shaped names.
    """
    data = load_manifest(manifest)
    required = _manifest_shapes(data["tensors"], prefix_strip)
    optional = _manifest_shapes(data.get("enc_q_tensors_not_in_finetuned_files", []), prefix_strip)
    missing = [n for n in required if n not in weights]
    unexpected = [n for n in weights if n not in required and n not in optional]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    for name, tensor in weights.items():
        expected = required.get(name, optional.get(name))
        if expected is not None and _shape(tensor) != expected:
            mismatched.append((name, _shape(tensor), expected))
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(_listing("missing", missing))
        if unexpected:
            parts.append(_listing("unexpected", unexpected))
        if mismatched:
            parts.append(
                _listing(
                    "mis-shaped",
                    [f"{n} {list(got)} (manifest {list(exp)})" for n, got, exp in mismatched],
                )
            )
        what = data.get("what", "manifest")
        raise ManifestMismatchError(
            f"state dict does not match {str(what)[:80]}: " + "; ".join(parts),
            missing=missing,
            unexpected=unexpected,
            mismatched=mismatched,
        )
