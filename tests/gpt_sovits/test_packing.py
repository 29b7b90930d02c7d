"""Serving's packed generator: a masked batch's items laid end to end decode as they would in
the padded batch, and so as they would alone (tiny fixture model, float32 on the CPU; the
packed convolutions only sum in another order)."""

from __future__ import annotations

import copy
import itertools
import json
import random
from pathlib import Path

import pytest
import torch

from voiceseal_models.gpt_sovits.serving.fast_generator import FastGenerator
from voiceseal_models.gpt_sovits.serving.packing import PackedGenerator, pack_rows, packing_gap
from voiceseal_models.gpt_sovits.serving.vocoder import AudioJob, decode_batch, prior_frames
from voiceseal_models.gpt_sovits.sovits import SoVITSConfig, SynthesizerTrn

ATOL = 1e-5


@pytest.fixture(scope="module")
def model(fixtures_dir: Path) -> SynthesizerTrn:
    return SynthesizerTrn.from_checkpoint(fixtures_dir / "s2_v2_tiny.pth")


def test_pack_rows_places_every_item_once_within_capacity() -> None:
    rng = random.Random(3)
    for _ in range(200):
        lengths = [rng.randint(1, 40) for _ in range(rng.randint(1, 30))]
        capacity, gap = max(lengths) + rng.randint(0, 5), rng.randint(1, 4)
        rows = pack_rows(lengths, capacity, gap)
        placed = sorted(item for row in rows for item, _ in row)
        assert placed == list(range(len(lengths)))
        ends = []
        for row in rows:
            spans = sorted((start, start + lengths[item]) for item, start in row)
            assert spans[0][0] >= 0 and spans[-1][1] <= capacity
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert start - end >= gap
            ends.append(spans[-1][1])
        # A row is opened only for an item that fitted in no earlier row.
        for r, row in enumerate(rows):
            opener = lengths[row[0][0]]
            assert all(ends[q] + gap + opener > capacity for q in range(r))


def test_pack_rows_shares_rows() -> None:
    # 10 fits beside 4 and 3 (with gaps of 1) in a row of 20; 20 fills one alone.
    assert pack_rows([20, 10, 4, 3], 20, 1) == [[(0, 0)], [(1, 0), (2, 11), (3, 16)]]


def test_packing_gap_covers_every_convolution(model: SynthesizerTrn, fixtures_dir: Path) -> None:
    # conv_pre's 7 taps reach 3 frames, +1 of margin.
    assert packing_gap(model.dec) == 4
    manifest = json.loads((fixtures_dir / "manifest_s2_v2ProPlus.json").read_text())
    config = SoVITSConfig.from_hparams(manifest["config"], version="v2ProPlus")
    with torch.device("meta"):
        full = SynthesizerTrn(config)
    # Full size: conv_pre (7 taps) needs 4 frames; the first stage's dilated 11-tap
    # convolutions reach 25 samples at 10 per frame, 3 frames.
    assert packing_gap(full.dec) == 4


def _jobs(model: SynthesizerTrn, lengths: list[int], seed: int) -> list[AudioJob]:
    gen = torch.Generator().manual_seed(seed)
    ge = torch.randn(len(lengths), model.config.gin_channels, 1, generator=gen)
    return [
        AudioJob(
            torch.randint(0, 1024, (n,), generator=gen),
            torch.randint(1, 300, (n // 2 + 3,), generator=gen),
            ge[i : i + 1],
            noise=torch.randn(model.config.inter_channels, prior_frames(model, n), generator=gen),
        )
        for i, n in enumerate(lengths)
    ]


@pytest.mark.parametrize("fast", [False, True])
def test_packed_batch_equals_padded_batch_and_solo(model: SynthesizerTrn, fast: bool) -> None:
    lengths = [40, 9, 17, 6, 33, 12]
    jobs = _jobs(model, lengths, seed=7)
    dec = FastGenerator(model.dec) if fast else None
    padded = decode_batch(model, jobs, length_multiple=1, dec=dec, pack=False)
    packed = decode_batch(model, jobs, length_multiple=1, dec=dec)
    for i, job in enumerate(jobs):
        [solo] = decode_batch(model, [job], length_multiple=1, dec=dec)
        assert packed[i].shape == padded[i].shape == solo.shape
        torch.testing.assert_close(packed[i], padded[i], atol=ATOL, rtol=0)
        torch.testing.assert_close(packed[i], solo, atol=ATOL, rtol=0)


def test_packed_generator_runs_fewer_frames(model: SynthesizerTrn) -> None:
    gen = torch.Generator().manual_seed(2)
    lengths = torch.tensor([30, 12, 10, 6])
    x = torch.randn(4, model.config.inter_channels, 30, generator=gen)
    g = torch.randn(4, model.config.gin_channels, 1, generator=gen)
    mask = (torch.arange(30)[None] < lengths[:, None]).float()[:, None]
    packed = PackedGenerator(model.dec, packing_gap(model.dec))
    with torch.inference_mode():
        expected = model.dec(x, g, mask)
        got = packed(x, g, mask)
    # 30 fills a row; 12 and 10 share one (12 + a gap of 4 + 10 = 26 frames), 6 no longer
    # fits there: 3 rows of 30 frames against 4.
    assert packed.last_frames == (3 * 30, 4 * 30)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    # Unmasked input and single items pass straight through.
    with torch.inference_mode():
        torch.testing.assert_close(packed(x, g, None), model.dec(x, g, None), atol=0, rtol=0)
    with pytest.raises(ValueError, match="gap"):
        PackedGenerator(model.dec, 0)


def test_packed_rows_are_padded_to_the_width_multiple(model: SynthesizerTrn) -> None:
    """Rows padded to a multiple of frames (at most the batch's width): the generator meets the
    padded batches' few widths, not one per mix of lengths; the audio does not change."""
    gen = torch.Generator().manual_seed(4)
    lengths = torch.tensor([30, 12, 10])
    x = torch.randn(3, model.config.inter_channels, 40, generator=gen)
    g = torch.randn(3, model.config.gin_channels, 1, generator=gen)
    mask = (torch.arange(40)[None] < lengths[:, None]).float()[:, None]
    with torch.inference_mode():
        expected = model.dec(x, g, mask)
        for multiple, width in ((1, 30), (8, 32), (25, 40), (64, 40)):
            packed = PackedGenerator(model.dec, packing_gap(model.dec), multiple)
            got = packed(x, g, mask)
            # 30 fills a row; 12 and 10 share one (26 frames): 2 rows, 30 frames wide at most.
            assert packed.last_frames == (2 * width, 3 * 40), multiple
            torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="width_multiple"):
        PackedGenerator(model.dec, 4, 0)


def test_half_precision_masks_give_exact_lengths(model: SynthesizerTrn) -> None:
    """A bfloat16 mask summed over 301 frames gives 300: lengths are counted instead, or the
    longest item would lose its last frame."""
    dec = copy.deepcopy(model.dec).to(torch.bfloat16)
    gen = torch.Generator().manual_seed(5)
    lengths = torch.tensor([301, 150, 100])
    x = torch.randn(3, model.config.inter_channels, 301, generator=gen).bfloat16()
    g = torch.randn(3, model.config.gin_channels, 1, generator=gen).bfloat16()
    mask = (torch.arange(301)[None] < lengths[:, None]).bfloat16()[:, None]
    assert float(mask.sum(dim=(1, 2))[0]) != 301  # what the former sum saw
    packed = PackedGenerator(dec, packing_gap(model.dec))
    with torch.inference_mode():
        got = packed(x, g, mask)
        expected = dec(x, g, mask)
    # 301 fills a row; 150 and 100 share one (150 + 4 + 100 = 254 frames).
    assert packed.last_frames == (2 * 301, 3 * 301)
    hop = got.shape[-1] // 301
    last = slice(300 * hop, 301 * hop)  # the longest item's last frame
    assert float(expected[0, 0, last].abs().max()) > 0
    torch.testing.assert_close(
        got[0, 0, last].float(), expected[0, 0, last].float(), atol=0.05, rtol=0
    )
