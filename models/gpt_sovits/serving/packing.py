"""Packing a padded batch's items end to end for the SoVITS waveform generator.

A padded batch runs the generator over `items x longest item` frames: with requests of
unequal lengths (a server's are) much of that is padding. On an H100, 128 finished requests of
5-15 s took the SoVITS worker 930 audio-s per second in batches of up to 64, against ~1,850 for
equal lengths (bench/partition_lab.py, bench/gpu.py): the generator is nearly all of SoVITS's
arithmetic, and it was computing zeros.

`PackedGenerator` wraps a generator (`Generator` or serving's `FastGenerator`, same contract)
and lays the items of a masked batch end to end in rows no longer than the longest item
(first-fit decreasing), separated by `packing_gap` masked frames, so the generator computes
about the frames that exist. The generator zeroes masked positions before every convolution;
a gap at least as wide as every convolution's reach (at its own sample rate) therefore shows
each item only zeros beyond its ends, exactly the zero padding it gets alone, and the items
decode as they would alone (up to float rounding: the convolutions see other shapes).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from voiceseal_models.gpt_sovits.sovits.generator import Generator, ResBlock1

GeneratorFn = Callable[[Tensor, Tensor, Tensor | None], Tensor]


def _conv_shape(module: nn.Module) -> tuple[int, int, int]:
    """(kernel taps, dilation, padding) of a generator convolution (plain or weight-normed)."""
    weight = module.weight_v if hasattr(module, "weight_v") else module.weight
    assert isinstance(weight, Tensor)

    def single(value: object) -> int:
        return value if isinstance(value, int) else int(value[0])  # type: ignore[index]

    dilation = single(getattr(module, "dilation", 1))
    return int(weight.shape[-1]), dilation, single(module.padding)


def packing_gap(dec: Generator) -> int:
    """Masked frames needed between two packed items so that no convolution of `dec` reaches
    from one into the other (counted at the generator's input rate, one frame of margin)."""
    need = 0

    def conv(module: nn.Module, rate: int) -> None:
        nonlocal need
        taps, dilation, _ = _conv_shape(module)
        need = max(need, math.ceil((taps - 1) * dilation // 2 / rate) + 1)

    conv(dec.conv_pre, 1)
    rate = 1
    for stage, (up, factor) in enumerate(zip(dec.ups, dec.upsample_rates, strict=True)):
        # Output sample o of a transposed conv reads inputs down to (o + pad - taps + 1) / stride.
        taps, _, pad = _conv_shape(up)
        need = max(need, math.ceil(math.ceil((taps - 1 - pad) / factor) / rate) + 1)
        rate *= factor
        blocks = dec.resblocks[stage * dec.num_kernels : (stage + 1) * dec.num_kernels]
        for block in blocks:
            assert isinstance(block, ResBlock1)
            for module in (*block.convs1, *block.convs2):
                conv(module, rate)
    conv(dec.conv_post, rate)
    return need


def pack_rows(lengths: list[int], capacity: int, gap: int) -> list[list[tuple[int, int]]]:
    """First-fit decreasing: rows of (item, start frame), each row's items `gap` frames apart
    and ending by `capacity`. An item longer than `capacity` gets a row of its own."""
    rows: list[list[tuple[int, int]]] = []
    ends: list[int] = []  # frame just past each row's last item
    for item in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        n = lengths[item]
        for r, end in enumerate(ends):
            start = end + gap
            if start + n <= capacity:
                rows[r].append((item, start))
                ends[r] = start + n
                break
        else:
            rows.append([(item, 0)])
            ends.append(n)
    return rows


class PackedGenerator:
    """A generator with the `Generator.forward` contract that packs masked batches (see the
    module doc); unmasked input and single items pass straight through.

    Args:
        dec: the generator to run (e.g. a `FastGenerator`).
        gap: masked frames between packed items (`packing_gap` of the underlying `Generator`).
        width_multiple: packed rows are padded (masked) to a multiple of this many frames, at
            most to the batch's own width: the generator then meets the padded batches' few
            widths, not one per mix of lengths (each new shape costs new convolution plans).
    """

    def __init__(self, dec: GeneratorFn, gap: int, width_multiple: int = 1) -> None:
        if gap < 1 or width_multiple < 1:
            raise ValueError(f"gap and width_multiple must be >= 1, got {gap}, {width_multiple}")
        self.dec, self.gap, self.width_multiple = dec, gap, width_multiple
        #: Frames the last call ran, padded, against what a padded batch would have run.
        self.last_frames: tuple[int, int] = (0, 0)

    def __call__(self, x: Tensor, g: Tensor, x_mask: Tensor | None = None) -> Tensor:
        batch, _, frames = x.shape
        if x_mask is None or batch == 1:
            return self.dec(x, g, x_mask)
        # Counted, not summed: a half-precision sum of the mask is not exact past 256 (bf16)
        # or 2,048 (fp16) frames, and a length off by one frame cuts or overruns an item.
        lengths = [int(n) for n in (x_mask > 0).sum(dim=(1, 2)).tolist()]
        rows = pack_rows(lengths, frames, self.gap)
        if len(rows) == batch:  # nothing shares a row: the padded batch as it is
            self.last_frames = (batch * frames, batch * frames)
            return self.dec(x, g, x_mask)
        width = max(start + lengths[item] for row in rows for item, start in row)
        width = min(frames, -(-width // self.width_multiple) * self.width_multiple)
        device = x.device
        # Index of every packed frame's source in x's (item, frame) rows; the extra last row
        # of the source tables is zeros (the gaps and the rows' tails).
        blank = batch * frames
        source = torch.full((len(rows), width), blank, dtype=torch.int64)
        owner = torch.full((len(rows), width), batch, dtype=torch.int64)
        for r, row in enumerate(rows):
            for item, start in row:
                n = lengths[item]
                source[r, start : start + n] = item * frames + torch.arange(n)
                owner[r, start : start + n] = item
        source, owner = source.to(device), owner.to(device)
        flat_x = torch.cat([x.transpose(1, 2).reshape(blank, -1), x.new_zeros(1, x.shape[1])])
        packed_x = flat_x[source].transpose(1, 2)
        styles = g[:, :, 0].expand(batch, -1)
        flat_g = torch.cat([styles, styles.new_zeros(1, styles.shape[1])])
        packed_g = flat_g[owner].transpose(1, 2)
        packed_mask = (owner < batch).to(x_mask.dtype)[:, None, :]
        audio = self.dec(packed_x.contiguous(), packed_g.contiguous(), packed_mask)
        hop = audio.shape[-1] // width
        if audio.shape[-1] != hop * width:
            raise RuntimeError(
                f"the generator returned {audio.shape[-1]} samples for {width} frames"
            )
        # Back to the padded layout: item i's frame t is packed frame (row, start + t).
        back = torch.full((batch, frames), len(rows) * width, dtype=torch.int64)
        for r, row in enumerate(rows):
            for item, start in row:
                n = lengths[item]
                back[item, :n] = r * width + start + torch.arange(n)
        pieces = audio.reshape(len(rows) * width, hop)
        pieces = torch.cat([pieces, pieces.new_zeros(1, hop)])
        self.last_frames = (len(rows) * width, batch * frames)
        return pieces[back.to(device)].reshape(batch, 1, frames * hop)
