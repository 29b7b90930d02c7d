"""Official GPT-SoVITS weight files: safe loading, version detection, pairing, manifests."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch

from voiceseal_models.gpt_sovits.checkpoint import (
    CheckpointError,
    CheckpointInfo,
    ManifestMismatchError,
    UnsupportedCheckpointError,
    check_pair,
    init_device,
    load_gpt_checkpoint,
    load_manifest,
    load_sovits_checkpoint,
    sniff_checkpoint,
    verify_against_manifest,
)

# --------------------------------------------------------------------------- helpers


def _saved(obj: Any, head: bytes = b"PK") -> bytes:
    """`torch.save` into memory, optionally stamping a GPT-SoVITS version tag over "PK"."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = bytearray(buf.getvalue())
    data[:2] = head
    return bytes(data)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _sovits_weights(
    *, rows: int | None = 732, sv_emb: bool = False, channels: int = 512, cfm: bool = False
) -> dict[str, torch.Tensor]:
    """Minimal tensors carrying every feature the version logic looks at."""
    w: dict[str, torch.Tensor] = {"enc_p.ssl_proj.weight": torch.zeros(4, 768, 1).half()}
    if rows is not None:
        w["enc_p.text_embedding.weight"] = torch.zeros(rows, 4).half()
    w["dec.conv_pre.weight"] = torch.zeros(channels, 4, 7).half()
    if sv_emb:
        w["sv_emb.weight"] = torch.zeros(8, 16).half()
    if cfm:
        w["cfm.estimator.proj_out.weight"] = torch.zeros(4, 4).half()
    return w


def _sovits_file(weights: dict[str, torch.Tensor], head: bytes = b"PK", **extra: Any) -> bytes:
    top: dict[str, Any] = OrderedDict(
        weight=weights, config={"model": {}}, info="1epoch_1iteration"
    )
    top.update(extra)
    return _saved(top, head)


def _gpt_file(phonemes: int = 732) -> bytes:
    weights = OrderedDict(
        [
            ("model.ar_text_embedding.word_embeddings.weight", torch.zeros(phonemes, 4).half()),
            ("model.ar_predict_layer.weight", torch.zeros(1025, 4).half()),
        ]
    )
    config = {"model": {"phoneme_vocab_size": phonemes}, "data": {"max_sec": 54}}
    return _saved(OrderedDict(weight=weights, config=config, info="GPT-e1"))


def _zip_with_pickle(payload: bytes, root: str = "1795486390.31/") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{root}data.pkl", payload)
        z.writestr(f"{root}byteorder", "little")
    return buf.getvalue()


# --------------------------------------------------------------------------- tiny files


class TestTinyOfficialFiles:
    def test_gpt_file_loads_exactly(self, fixtures_dir: Path) -> None:
        ckpt = load_gpt_checkpoint(fixtures_dir / "t2s_tiny.ckpt")
        reference = torch.load(fixtures_dir / "t2s_tiny.ckpt", weights_only=True)
        assert list(ckpt.weights) == list(reference["weight"])
        for name, tensor in reference["weight"].items():
            assert ckpt.weights[name].dtype == torch.float16
            assert torch.equal(ckpt.weights[name], tensor), name
        assert ckpt.config == json.loads((fixtures_dir / "t2s_tiny_config.json").read_text())
        assert ckpt.info == "GPT-e1"
        assert ckpt.path == fixtures_dir / "t2s_tiny.ckpt"
        assert ckpt.symbols == "v2"

    def test_gpt_file_loads_from_bytes(self, fixtures_dir: Path) -> None:
        ckpt = load_gpt_checkpoint((fixtures_dir / "t2s_tiny.ckpt").read_bytes())
        assert ckpt.path is None
        assert len(ckpt.weights) == 31

    def test_sovits_file_names_shapes_and_config(self, fixtures_dir: Path) -> None:
        ckpt = load_sovits_checkpoint(fixtures_dir / "s2_v2_tiny.pth")
        listing = json.loads((fixtures_dir / "tiny_checkpoint_keys.json").read_text())[
            "s2_v2_tiny.pth"
        ]
        assert [row[0] for row in listing["tensors"]] == list(ckpt.weights)
        for name, shape, dtype, *_ in listing["tensors"]:
            assert list(ckpt.weights[name].shape) == shape, name
            assert str(ckpt.weights[name].dtype) == f"torch.{dtype}"
        assert ckpt.version == "v2" and not ckpt.is_lora and ckpt.lora_rank is None
        assert ckpt.info == "1epoch_1iteration"
        expected = json.loads((fixtures_dir / "s2_v2_tiny_config.json").read_text())
        assert {k: ckpt.config[k] for k in expected} == expected
        assert ckpt.config["save_weight_dir"] == "SoVITS_weights_v2"
        assert ckpt.config["pretrain"] is None and ckpt.config["resume_step"] is None

    def test_sovits_shared_storages_are_shared(self, fixtures_dir: Path) -> None:
        ckpt = load_sovits_checkpoint(fixtures_dir / "s2_v2_tiny.pth")
        listing = json.loads((fixtures_dir / "tiny_checkpoint_keys.json").read_text())[
            "s2_v2_tiny.pth"
        ]
        shared = [row for row in listing["tensors"] if len(row) == 4]
        assert len(shared) == 28
        for name, _shape, _dtype, owner in shared:
            a, b = ckpt.weights[name], ckpt.weights[owner]
            assert a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
            assert torch.equal(a, b)
        storages = {t.untyped_storage().data_ptr() for t in ckpt.weights.values()}
        assert len(storages) == listing["n_distinct_storages"]

    def test_sniff_reads_no_tensor_bytes_and_classifies(self, fixtures_dir: Path) -> None:
        gpt = sniff_checkpoint(fixtures_dir / "t2s_tiny.ckpt")
        sovits = sniff_checkpoint(fixtures_dir / "s2_v2_tiny.pth")
        assert (gpt.kind, gpt.version, gpt.symbols, gpt.head, gpt.n_tensors) == (
            "gpt",
            "v2",
            "v2",
            "PK",
            31,
        )
        assert (sovits.kind, sovits.version, sovits.is_lora, sovits.n_tensors) == (
            "sovits",
            "v2",
            False,
            529,
        )
        assert gpt.supported and sovits.supported
        # Size-based guessing (the official fast path) would call this 17 MB file "v1".
        assert sovits.pretrained_name is None

    def test_big_endian_archive(self, fixtures_dir: Path, tmp_path: Path) -> None:
        source = fixtures_dir / "t2s_tiny.ckpt"
        out = io.BytesIO()
        with zipfile.ZipFile(source) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
            for info in src.infolist():
                data = src.read(info.filename)
                if "/data/" in info.filename:  # every storage of this file is float16
                    data = (
                        torch.frombuffer(bytearray(data), dtype=torch.uint8)
                        .view(-1, 2)
                        .flip(1)
                        .numpy()
                        .tobytes()
                    )
                elif info.filename.endswith("/byteorder"):
                    data = b"big"
                dst.writestr(info.filename, data)
        swapped = load_gpt_checkpoint(_write(tmp_path / "big.ckpt", out.getvalue()))
        native = load_gpt_checkpoint(source)
        for name, tensor in native.weights.items():
            assert torch.equal(swapped.weights[name], tensor), name


# --------------------------------------------------------------------------- version tags


class TestVersionTags:
    @pytest.mark.parametrize("tag", [b"01"])
    def test_tagged_copy_of_the_tiny_v2_file_loads(
        self, fixtures_dir: Path, tmp_path: Path, tag: bytes
    ) -> None:
        data = bytearray((fixtures_dir / "s2_v2_tiny.pth").read_bytes())
        data[:2] = tag
        path = _write(tmp_path / "tagged.pth", bytes(data))
        info = sniff_checkpoint(path)
        assert (info.version, info.head) == ("v2", tag.decode())
        ckpt = load_sovits_checkpoint(path)
        plain = load_sovits_checkpoint(fixtures_dir / "s2_v2_tiny.pth")
        assert all(torch.equal(ckpt.weights[k], v) for k, v in plain.weights.items())

    @pytest.mark.parametrize(
        ("tag", "claimed"), [(b"05", "v2Pro"), (b"06", "v2ProPlus"), (b"00", "v1")]
    )
    def test_tag_contradicting_the_weights_is_refused(
        self, fixtures_dir: Path, tmp_path: Path, tag: bytes, claimed: str
    ) -> None:
        data = bytearray((fixtures_dir / "s2_v2_tiny.pth").read_bytes())
        data[:2] = tag
        path = _write(tmp_path / "tagged.pth", bytes(data))
        with pytest.raises(
            CheckpointError,
            match=f"header tag {tag.decode()} says {claimed} but the weights are those of a v2 ",
        ):
            sniff_checkpoint(path)

    @pytest.mark.parametrize(
        ("weights", "head", "extra", "version", "lora"),
        [
            (_sovits_weights(sv_emb=True), b"05", {}, "v2Pro", False),
            (_sovits_weights(sv_emb=True, channels=768), b"06", {}, "v2ProPlus", False),
            (_sovits_weights(sv_emb=True, channels=768), b"PK", {}, "v2ProPlus", False),
            (_sovits_weights(), b"01", {}, "v2", False),
            (_sovits_weights(rows=322), b"00", {}, "v1", False),
            (_sovits_weights(rows=322), b"PK", {}, "v1", False),
            (_sovits_weights(rows=None, cfm=True), b"02", {}, "v3", False),
            (_sovits_weights(rows=None, cfm=True), b"03", {"lora_rank": 32}, "v3", True),
            (_sovits_weights(rows=None, cfm=True), b"04", {"lora_rank": 16}, "v4", True),
        ],
    )
    def test_content_and_tag_decide_the_version(
        self,
        tmp_path: Path,
        weights: dict[str, torch.Tensor],
        head: bytes,
        extra: dict[str, Any],
        version: str,
        lora: bool,
    ) -> None:
        path = _write(tmp_path / "m.pth", _sovits_file(weights, head, **extra))
        info = sniff_checkpoint(path)
        assert (info.kind, info.version, info.is_lora) == ("sovits", version, lora)
        assert info.lora_rank == extra.get("lora_rank")
        assert info.symbols == ("v1" if version == "v1" else "v2")
        if info.supported:
            assert load_sovits_checkpoint(path).version == version
        else:
            with pytest.raises(UnsupportedCheckpointError, match="not yet supported"):
                load_sovits_checkpoint(path)
            ckpt = load_sovits_checkpoint(path, allow_unsupported=True)
            assert (ckpt.version, ckpt.is_lora) == (version, lora)

    def test_v3_v4_told_apart_by_config(self, tmp_path: Path) -> None:
        w = _sovits_weights(rows=None, cfm=True)
        v4 = OrderedDict(weight=w, config={"model": {"version": "v4"}}, info="x")
        assert sniff_checkpoint(_write(tmp_path / "v4.pth", _saved(v4))).version == "v4"
        unknown = OrderedDict(weight=w, config={"model": {}}, info="x")
        with pytest.raises(CheckpointError, match="do not say which of the two"):
            sniff_checkpoint(_write(tmp_path / "v34.pth", _saved(unknown)))

    def test_unusual_phoneme_table_is_refused(self, tmp_path: Path) -> None:
        path = _write(tmp_path / "m.pth", _sovits_file(_sovits_weights(rows=500)))
        with pytest.raises(CheckpointError, match="has 500 rows"):
            sniff_checkpoint(path)

    def test_v1_gpt_is_recognised_but_unsupported(self, tmp_path: Path) -> None:
        path = _write(tmp_path / "v1.ckpt", _gpt_file(512))
        info = sniff_checkpoint(path)
        assert (info.kind, info.symbols, info.supported) == ("gpt", "v1", False)
        with pytest.raises(UnsupportedCheckpointError, match="512-phoneme"):
            load_gpt_checkpoint(path)
        assert load_gpt_checkpoint(path, allow_unsupported=True).symbols == "v1"

    def test_wrong_kind_loader(self, fixtures_dir: Path) -> None:
        with pytest.raises(CheckpointError, match=r"SoVITS \(v2\) file, not a GPT file"):
            load_gpt_checkpoint(fixtures_dir / "s2_v2_tiny.pth")
        with pytest.raises(CheckpointError, match="GPT file, not a SoVITS file"):
            load_sovits_checkpoint(fixtures_dir / "t2s_tiny.ckpt")


# --------------------------------------------------------------------------- safety


class _Evil:
    def __init__(self, call: Any, arg: str) -> None:
        self.call, self.arg = call, arg

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (self.call, (self.arg,))


class TestRestrictedUnpickling:
    @pytest.mark.parametrize(
        ("call", "global_name"), [(os.system, "system"), (eval, "builtin_*s*.eval")]
    )
    def test_code_execution_is_refused(self, tmp_path: Path, call: Any, global_name: str) -> None:
        marker = tmp_path / "pwned"
        payload = pickle.dumps(
            {
                "weight": _Evil(
                    call, f"open({str(marker)!r}, 'w')" if call is eval else f"touch {marker}"
                )
            },
            protocol=2,
        )
        path = _write(tmp_path / "evil.pth", _zip_with_pickle(payload))
        with pytest.raises(
            CheckpointError,
            match=f"refused to unpickle: it references the global '.*{global_name}'",
        ):
            load_sovits_checkpoint(path)
        with pytest.raises(CheckpointError, match="refused to unpickle"):
            sniff_checkpoint(path)
        assert not marker.exists()

    def test_tagged_file_is_checked_too(self, tmp_path: Path) -> None:
        data = bytearray(_zip_with_pickle(pickle.dumps(_Evil(os.system, "true"), protocol=2)))
        data[:2] = b"05"
        with pytest.raises(CheckpointError, match="refused to unpickle"):
            sniff_checkpoint(bytes(data))

    def test_parameters_and_foreign_classes_are_refused(self, tmp_path: Path) -> None:
        weights = {"model.ar_predict_layer.weight": torch.nn.Parameter(torch.zeros(2, 2))}
        data = _saved({"weight": weights, "config": {}})
        with pytest.raises(CheckpointError, match=r"'torch\._utils\._rebuild_parameter'"):
            load_gpt_checkpoint(data)

    def test_storage_reference_out_of_bounds(self, tmp_path: Path) -> None:
        # A tensor claiming more elements than its storage holds must not read past it.
        data = _saved(OrderedDict(weight={"enc_p.x": torch.zeros(4)}, config={}, info=""))
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            entries = {n: z.read(n) for n in names}
        pkl = next(n for n in names if n.endswith("data.pkl"))
        # Protocol-2 pickles store the size tuple (4,) as BININT1 4 followed by TUPLE1.
        assert entries[pkl].count(b"K\x04\x85") == 1
        entries[pkl] = entries[pkl].replace(b"K\x04\x85", b"K\x40\x85")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for n in names:
                z.writestr(n, entries[n])
        with pytest.raises(
            CheckpointError, match=r"shape \[64\] reaches element 63 of a storage holding 4"
        ):
            load_sovits_checkpoint(buf.getvalue(), allow_unsupported=True)


# --------------------------------------------------------------------------- damaged input


class TestDamagedFiles:
    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(CheckpointError, match="no such checkpoint file"):
            sniff_checkpoint(tmp_path / "absent.ckpt")

    def test_empty_and_tiny_files(self, tmp_path: Path) -> None:
        with pytest.raises(CheckpointError, match="empty file"):
            sniff_checkpoint(_write(tmp_path / "e.pth", b""))
        with pytest.raises(CheckpointError, match="only 4 bytes"):
            sniff_checkpoint(_write(tmp_path / "t.pth", b"PK\x03\x04"))

    def test_not_a_checkpoint(self, tmp_path: Path) -> None:
        path = _write(tmp_path / "notes.pth", b"hello, this is a text file and not weights\n" * 4)
        with pytest.raises(CheckpointError, match=r"not a checkpoint: starts with b'he'"):
            sniff_checkpoint(path)

    @pytest.mark.parametrize("fraction", [0.5, 0.99])
    def test_truncated(self, fixtures_dir: Path, tmp_path: Path, fraction: float) -> None:
        data = (fixtures_dir / "t2s_tiny.ckpt").read_bytes()
        path = _write(tmp_path / "cut.ckpt", data[: int(len(data) * fraction)])
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            load_gpt_checkpoint(path)

    def test_corrupt_storage_bytes(self, fixtures_dir: Path, tmp_path: Path) -> None:
        data = bytearray((fixtures_dir / "t2s_tiny.ckpt").read_bytes())
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
            entry = next(n for n in z.namelist() if n.endswith("/data/0"))
            payload = z.read(entry)
        at = bytes(data).find(payload)
        data[at + 10] ^= 0xFF
        path = _write(tmp_path / "flipped.ckpt", bytes(data))
        sniff_checkpoint(path)  # the pickle is intact, only tensor bytes are damaged
        with pytest.raises(CheckpointError, match="storage '0' is corrupt"):
            load_gpt_checkpoint(path)

    def test_zip_without_torch_content(self, tmp_path: Path) -> None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("readme.txt", "not weights")
        with pytest.raises(CheckpointError, match="not a torch checkpoint"):
            sniff_checkpoint(_write(tmp_path / "a.zip", buf.getvalue()))

    def test_torch_file_of_another_kind(self, tmp_path: Path) -> None:
        with pytest.raises(CheckpointError, match="holding Tensor, not a GPT-SoVITS checkpoint"):
            sniff_checkpoint(_saved(torch.zeros(3)))
        with pytest.raises(CheckpointError, match=r"missing \['weight', 'config'\]"):
            sniff_checkpoint(_saved({"state_dict": {}}))
        other = OrderedDict(weight={"encoder.layer.weight": torch.zeros(2)}, config={}, info="")
        with pytest.raises(CheckpointError, match="neither a GPT-SoVITS GPT"):
            sniff_checkpoint(_saved(other))

    def test_legacy_torch_serialization(self, tmp_path: Path) -> None:
        buf = io.BytesIO()
        torch.save({"weight": {}}, buf, _use_new_zipfile_serialization=False)
        with pytest.raises(CheckpointError, match="legacy"):
            sniff_checkpoint(buf.getvalue())


# --------------------------------------------------------------------------- pairing


class TestPairing:
    def test_official_tiny_pair_is_accepted(self, fixtures_dir: Path) -> None:
        check_pair(fixtures_dir / "t2s_tiny.ckpt", fixtures_dir / "s2_v2_tiny.pth")

    def test_v1_gpt_with_v2_sovits_is_refused(self, fixtures_dir: Path, tmp_path: Path) -> None:
        gpt_v1 = _write(tmp_path / "v1.ckpt", _gpt_file(512))
        with pytest.raises(
            CheckpointError,
            match="GPT file uses the v1 phoneme table but the SoVITS file \\(v2\\) uses the v2",
        ):
            check_pair(gpt_v1, fixtures_dir / "s2_v2_tiny.pth")
        sovits_v1 = _write(tmp_path / "v1.pth", _sovits_file(_sovits_weights(rows=322)))
        with pytest.raises(CheckpointError, match="uses the v2 phoneme table"):
            check_pair(fixtures_dir / "t2s_tiny.ckpt", sovits_v1)
        check_pair(gpt_v1, sovits_v1)

    def test_roles_swapped(self, fixtures_dir: Path) -> None:
        with pytest.raises(CheckpointError, match="SoVITS file where a GPT file is expected"):
            check_pair(fixtures_dir / "s2_v2_tiny.pth", fixtures_dir / "t2s_tiny.ckpt")

    def test_lora_needs_its_base(self, fixtures_dir: Path, tmp_path: Path) -> None:
        lora = _write(
            tmp_path / "l.pth",
            _sovits_file(_sovits_weights(rows=None, cfm=True), b"04", lora_rank=32),
        )
        base_v4 = _write(
            tmp_path / "b4.pth",
            _saved(
                OrderedDict(
                    weight=_sovits_weights(rows=None, cfm=True),
                    config={"model": {"version": "v4"}},
                    info="",
                )
            ),
        )
        base_v3 = _write(
            tmp_path / "b3.pth", _sovits_file(_sovits_weights(rows=None, cfm=True), b"02")
        )
        gpt = fixtures_dir / "t2s_tiny.ckpt"
        with pytest.raises(
            CheckpointError, match=r"v4 LoRA \(rank 32\); it needs its base model \(s2Gv4.pth\)"
        ):
            check_pair(gpt, lora)
        check_pair(gpt, lora, sovits_base=base_v4)
        with pytest.raises(
            CheckpointError, match="LoRA is for SoVITS v4 but the base given is a sovits v3"
        ):
            check_pair(gpt, lora, sovits_base=base_v3)
        with pytest.raises(CheckpointError, match="not a LoRA"):
            check_pair(gpt, base_v4, sovits_base=base_v4)

    def test_accepts_sniffed_infos(self, fixtures_dir: Path) -> None:
        infos = [sniff_checkpoint(fixtures_dir / n) for n in ("t2s_tiny.ckpt", "s2_v2_tiny.pth")]
        assert all(isinstance(i, CheckpointInfo) for i in infos)
        check_pair(*infos)


# --------------------------------------------------------------------------- manifests


MANIFESTS = [
    ("manifest_s1_v2.json", 295),
    ("manifest_s2_v2.json", 673),
    ("manifest_s2_v2Pro.json", 678),
    ("manifest_s2_v2ProPlus.json", 678),
    ("manifest_s2_v3.json", 685),
    ("manifest_s2_v4.json", 685),
    ("manifest_vocoder_v4.json", 194),
]


def _state_from(manifest: dict[str, Any], prefix: str = "") -> dict[str, torch.Tensor]:
    # Meta tensors: full-size shapes without allocating the memory.
    return {
        name.removeprefix(prefix): torch.empty(shape, device="meta", dtype=torch.float16)
        for name, shape, _ in manifest["tensors"]
    }


class TestManifests:
    @pytest.mark.parametrize(("name", "count"), MANIFESTS)
    def test_state_dict_built_from_manifest_passes(
        self, fixtures_dir: Path, name: str, count: int
    ) -> None:
        manifest = load_manifest(fixtures_dir / name)
        state = _state_from(manifest)
        assert len(state) == count
        verify_against_manifest(state, fixtures_dir / name)
        verify_against_manifest(state, manifest)

    def test_prefix_strip(self, fixtures_dir: Path) -> None:
        manifest = load_manifest(fixtures_dir / "manifest_s1_v2.json")
        stripped = _state_from(manifest, prefix="model.")
        verify_against_manifest(stripped, manifest, prefix_strip="model.")
        with pytest.raises(ManifestMismatchError, match="295 missing"):
            verify_against_manifest(stripped, manifest)

    def test_precise_message(self, fixtures_dir: Path) -> None:
        manifest = load_manifest(fixtures_dir / "manifest_s1_v2.json")
        state = _state_from(manifest)
        state["model.h.layers.3.linear1.weight"] = torch.empty(1024, 512, device="meta")
        del state["model.ar_audio_position.alpha"]
        state["model.speaker_proj.weight"] = torch.empty(512, 4096, device="meta")
        with pytest.raises(ManifestMismatchError) as err:
            verify_against_manifest(state, manifest)
        assert err.value.missing == ["model.ar_audio_position.alpha"]
        assert err.value.unexpected == ["model.speaker_proj.weight"]
        assert err.value.mismatched == [
            ("model.h.layers.3.linear1.weight", (1024, 512), (2048, 512))
        ]
        text = str(err.value)
        assert "1 missing: model.ar_audio_position.alpha" in text
        assert "1 unexpected: model.speaker_proj.weight" in text
        assert (
            "1 mis-shaped: model.h.layers.3.linear1.weight [1024, 512] (manifest [2048, 512])"
            in text
        )

    def test_enc_q_is_optional_but_shape_checked(self, fixtures_dir: Path) -> None:
        manifest = load_manifest(fixtures_dir / "manifest_s2_v2.json")
        state = _state_from(manifest)
        enc_q = {
            n: torch.empty(s, device="meta")
            for n, s, _ in manifest["enc_q_tensors_not_in_finetuned_files"]
        }
        verify_against_manifest({**state, **enc_q}, manifest)
        enc_q["enc_q.proj.weight"] = torch.empty(1, device="meta")
        with pytest.raises(
            ManifestMismatchError, match=r"enc_q.proj.weight \[1\] \(manifest \[384, 192, 1\]\)"
        ):
            verify_against_manifest({**state, **enc_q}, manifest)

    def test_v2_state_does_not_pass_as_v2pro(self, fixtures_dir: Path) -> None:
        state = _state_from(load_manifest(fixtures_dir / "manifest_s2_v2.json"))
        with pytest.raises(ManifestMismatchError, match=r"missing: .*sv_emb"):
            verify_against_manifest(state, fixtures_dir / "manifest_s2_v2Pro.json")

    def test_bad_manifest(self, tmp_path: Path) -> None:
        with pytest.raises(CheckpointError, match="no 'tensors' list"):
            verify_against_manifest({}, {"what": "x"})
        with pytest.raises(CheckpointError, match="cannot read manifest"):
            verify_against_manifest({}, _write(tmp_path / "m.json", b"{"))


# --------------------------------------------------------------------------- fixture integrity


def test_fixture_files_match_provenance(fixtures_dir: Path) -> None:
    """Every fixture is byte-identical to what the official code wrote (PROVENANCE.md sha256)."""
    listed = re.findall(
        r"^([0-9a-f]{64})  (\S+)$", (fixtures_dir / "PROVENANCE.md").read_text(), re.M
    )
    assert {name for _, name in listed} >= {"t2s_tiny.ckpt", "t2s_tiny_io.pt", "s2_v2_tiny.pth"}
    for digest, name in listed:
        assert hashlib.sha256((fixtures_dir / name).read_bytes()).hexdigest() == digest, name


def test_models_for_the_cpu_are_built_on_the_meta_device() -> None:
    # Their random initialisation would be thrown away by the checkpoint's tensors.
    assert init_device("cpu").type == "meta"
    assert init_device(torch.device("cpu"), {"w": torch.zeros(3)}).type == "meta"
