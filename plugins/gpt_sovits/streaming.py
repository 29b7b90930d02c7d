"""Token-level streaming for SoVITS: decode overlapping windows of tokens and cross-fade them.

The SoVITS decoder is not causal (its encoders attend over the whole latent sequence and its
convolutions look both ways), so audio for the newest tokens cannot simply be appended. Like
the official streaming mode (PR #2671: re-decoding overlapping latents with a cross-fade),
:class:`StreamingDecoder` waits for ``chunk`` new tokens, then decodes the window

    [last_end - crossfade - context, now)

that is, the new tokens plus ``crossfade`` tokens whose audio was held back last time plus
``context`` already-sent tokens that only serve as left context. The held-back audio is
cross-faded (raised cosine, equal gain: both versions say the same thing) into the new
decode of the same tokens, the audio up to ``now - crossfade`` is sent, and the last
``crossfade`` tokens are held back again because they were decoded without right context.
At the end the final window is decoded and everything left is sent.

Every window reads its prior noise from one :class:`NoiseSource` indexed by latent frame, so a
token gets the same noise whichever window decodes it, and a streamed sentence differs from the
same sentence decoded in one piece only by the missing far context at the window edges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

Samples = npt.NDArray[np.float32]
#: ``decode(start, end)``: audio of tokens ``[start, end)`` decoded as one window.
WindowDecoder = Callable[[int, int], Samples]

NOISE_BLOCK_FRAMES = 256


class NoiseSource:
    """Standard-normal prior noise ``[1, channels, frames]`` addressed by absolute latent frame.

    Drawn lazily in fixed blocks from the request's own generator, so the values at a frame do
    not depend on which window asks first or how long it is.
    """

    def __init__(
        self,
        channels: int,
        generator: torch.Generator,
        device: torch.device,
        dtype: torch.dtype,
        block: int = NOISE_BLOCK_FRAMES,
    ) -> None:
        self.channels = channels
        self.generator = generator
        self.device = device
        self.dtype = dtype
        self.block = block
        self._blocks: list[Tensor] = []

    def frames(self, start: int, count: int) -> Tensor:
        """Noise for latent frames ``[start, start + count)``, shape ``[1, channels, count]``."""
        if start < 0 or count < 1:
            raise ValueError(f"invalid noise range start={start} count={count}")
        while len(self._blocks) * self.block < start + count:
            self._blocks.append(
                torch.randn(
                    (1, self.channels, self.block),
                    generator=self.generator,
                    device=self.device,
                    dtype=torch.float32,
                )
            )
        first, last = start // self.block, (start + count - 1) // self.block
        joined = torch.cat(self._blocks[first : last + 1], dim=2)
        offset = start - first * self.block
        return joined[:, :, offset : offset + count].to(self.dtype)


def crossfade(old: Samples, new: Samples) -> Samples:
    """Fade from ``old`` into ``new`` over their common length (raised cosine, equal gain).

    ``new`` may be a few samples longer (speed changes round per window); its excess follows.
    """
    n = min(len(old), len(new))
    if n == 0:
        return new.astype(np.float32, copy=False)
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n, dtype=np.float64) + 0.5) / n)).astype(
        np.float32
    )
    faded = old[:n] * (1.0 - ramp) + new[:n] * ramp
    return np.concatenate([faded, new[n:]]).astype(np.float32, copy=False)


@dataclass
class StreamingDecoder:
    """Feed tokens with :meth:`push`; it returns audio whenever a window was decoded."""

    decode: WindowDecoder
    chunk: int
    context: int
    fade: int
    tokens: list[int] = field(default_factory=list)
    #: Number of windows decoded so far (for tests and metrics).
    windows: int = 0
    _decoded_to: int = 0
    _tail: Samples | None = None

    def __post_init__(self) -> None:
        if not 0 < self.fade < self.chunk or self.context < 0:
            raise ValueError(
                f"need 0 < fade < chunk and context >= 0, got fade={self.fade}, "
                f"chunk={self.chunk}, context={self.context}"
            )

    def push(self, token: int) -> Samples | None:
        self.tokens.append(token)
        if len(self.tokens) - self._decoded_to >= self.chunk:
            return self._window(final=False)
        return None

    def finish(self) -> Samples:
        """The rest of the audio: the final window (or only the held-back tail)."""
        if len(self.tokens) == self._decoded_to:
            tail, self._tail = self._tail, None
            return tail if tail is not None else np.zeros(0, np.float32)
        return self._window(final=True)

    def _window(self, *, final: bool) -> Samples:
        end = len(self.tokens)
        held_from = self._decoded_to - self.fade if self._tail is not None else self._decoded_to
        start = max(0, held_from - self.context)
        audio = self.decode(start, end)
        self.windows += 1
        scale = len(audio) / (end - start)

        def at(token: int) -> int:
            # Proportional token -> sample mapping: exact at speed 1 (a fixed number of samples
            # per token); at other speeds it follows the decoder's linear latent stretch.
            return round((token - start) * scale)

        pieces: list[Samples] = []
        if self._tail is not None:
            pieces.append(crossfade(self._tail, audio[at(held_from) : at(self._decoded_to)]))
        keep_until = end if final else end - self.fade
        pieces.append(audio[at(self._decoded_to) : at(keep_until)])
        self._tail = None if final else audio[at(keep_until) :]
        self._decoded_to = end
        return np.concatenate(pieces).astype(np.float32, copy=False)
