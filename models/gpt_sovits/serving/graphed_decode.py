"""Single-item SoVITS decode replayed from CUDA graphs, one per (tokens, phones) bucket.

One item is bound by kernel launches: on an H100 a 10 s decode launched ~2,300 kernels and
took ~36 ms of host time for ~16 ms of GPU work. `GraphedDecoder` captures the decode path
of `SynthesizerTrn.decode_detailed` (speed 1, `ge` given) for codes padded to a multiple of
`token_multiple` and phones to a multiple of `phone_multiple`, both masked by their true
lengths, and replays it. A bucket is captured the first time it is needed (a few hundred ms),
so a server that wants no such pause calls `capture` for its common lengths at start-up.

Padded and masked, an item decodes as it would alone (the synthesizer's padded-batch
guarantee). The prior noise is the caller's draw when given (a request's own frames, so that
its audio does not depend on the path that decoded it), else a fresh draw from the default CUDA
generator; its scale may change per call. `vocoder.GraphedChunkDecoder` is the same for stream
chunks of one fixed length.

A call fills the bucket's input buffers, replays and hands back a view of its output buffer, so
calls must not overlap: `decode` does all of it under the decoder's lock and returns a copy.
"""

from __future__ import annotations

import threading

import torch
from torch import Tensor

from voiceseal_models.gpt_sovits.graph_capture import CAPTURE_LOCK
from voiceseal_models.gpt_sovits.serving.fast_generator import FastGenerator
from voiceseal_models.gpt_sovits.sovits import SynthesizerTrn
from voiceseal_models.gpt_sovits.sovits.config import CODEBOOK_SIZE


class GraphedDecoder:
    """Args:
    model: a CUDA `SynthesizerTrn`.
    dec: the generator to capture (default: a `FastGenerator` of `model.dec`).
    token_multiple / phone_multiple: bucket sizes for codes and phones.
    max_tokens: the longest item accepted (bounds the buckets, and so memory).
    noise_scale: as in `decode`.
    """

    def __init__(
        self,
        model: SynthesizerTrn,
        *,
        dec: FastGenerator | None = None,
        token_multiple: int = 25,
        phone_multiple: int = 16,
        max_tokens: int = 1000,
        noise_scale: float = 0.5,
    ) -> None:
        self.device = next(model.parameters()).device
        if self.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA model, got one on {self.device}")
        if min(token_multiple, phone_multiple, max_tokens) < 1 or noise_scale < 0:
            raise ValueError("bucket sizes and max_tokens must be >= 1, noise_scale >= 0")
        self.model = model
        self.dec = dec or FastGenerator(model.dec)
        self.token_multiple, self.phone_multiple = token_multiple, phone_multiple
        self.max_tokens, self.noise_scale = max_tokens, noise_scale
        self.dtype = model.enc_p.proj.weight.dtype
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, dict[str, Tensor]]] = {}
        self._memory = torch.cuda.graph_pool_handle()
        self._lock = threading.Lock()  # captures
        self._replay = threading.Lock()  # `decode`: fill, replay, copy out

    def bucket(self, tokens: int, phones: int) -> tuple[int, int]:
        if not 1 <= tokens <= self.max_tokens or phones < 1:
            raise ValueError(
                f"need 1 <= tokens <= {self.max_tokens} and phones >= 1, got {tokens}, {phones}"
            )
        return _round_up(tokens, self.token_multiple), _round_up(phones, self.phone_multiple)

    def __contains__(self, bucket: tuple[int, int]) -> bool:
        return bucket in self._graphs

    @property
    def captured(self) -> int:
        """Buckets captured so far."""
        return len(self._graphs)

    @torch.inference_mode()
    def capture(self, tokens: int, phones: int) -> None:
        """Capture the bucket holding (tokens, phones) now, if it is not yet."""
        key = self.bucket(tokens, phones)
        with self._lock:
            if key in self._graphs:
                return
            t, p = key
            gin = self.model.config.gin_channels
            buffers = {
                "codes": torch.zeros(1, 1, t, dtype=torch.int64, device=self.device),
                "code_len": torch.full((1,), t, dtype=torch.int64, device=self.device),
                "phones": torch.zeros(1, p, dtype=torch.int64, device=self.device),
                "phone_len": torch.full((1,), p, dtype=torch.int64, device=self.device),
                "ge": torch.zeros(1, gin, 1, dtype=self.dtype, device=self.device),
                "noise": torch.zeros(
                    1,
                    self.model.config.inter_channels,
                    t * self.model.config.latent_upsampling,
                    dtype=self.dtype,
                    device=self.device,
                ),
                "scale": torch.full((), self.noise_scale, dtype=self.dtype, device=self.device),
            }
            current = torch.cuda.current_stream(self.device)
            side = torch.cuda.Stream(self.device)
            side.wait_stream(current)
            with torch.cuda.stream(side):
                self._forward(buffers)  # warm-up: plans and workspaces outside the capture
            current.wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: a capture on the vocoder thread must not forbid the decode
            # thread's allocations.
            with (
                CAPTURE_LOCK,
                torch.cuda.graph(graph, pool=self._memory, capture_error_mode="thread_local"),
            ):
                buffers["audio"] = self._forward(buffers)
            self._graphs[key] = (graph, buffers)

    def _forward(self, b: dict[str, Tensor]) -> Tensor:
        model = self.model
        ge = b["ge"]
        ge_text = (
            ge if model.ge_to512 is None else model.ge_to512(ge.transpose(1, 2)).transpose(1, 2)
        )
        quantized = model.quantizer.decode(b["codes"]).to(ge.dtype)
        upsampling = model.config.latent_upsampling
        if upsampling > 1:
            quantized = quantized.repeat_interleave(upsampling, dim=-1)
        _, m_p, logs_p, y_mask = model.enc_p(
            quantized, b["code_len"] * upsampling, b["phones"], b["phone_len"], ge_text, 1.0
        )
        z_p = m_p + b["noise"] * torch.exp(logs_p) * b["scale"]
        z = model.flow.inverse(z_p, y_mask, ge)
        return self.dec(z * y_mask, ge, y_mask)[0, 0]

    @torch.inference_mode()
    def decode(
        self,
        codes: Tensor,
        phones: Tensor,
        ge: Tensor,
        noise: Tensor | None = None,
        noise_scale: float | None = None,
    ) -> Tensor:
        """`__call__` for callers on several threads: under the lock, and the audio copied out
        as float32 on the CPU."""
        with self._replay:
            return self(codes, phones, ge, noise, noise_scale).float().cpu()

    @torch.inference_mode()
    def __call__(
        self,
        codes: Tensor,
        phones: Tensor,
        ge: Tensor,
        noise: Tensor | None = None,
        noise_scale: float | None = None,
    ) -> Tensor:
        """codes (n,) int, phones (m,) int, ge (1, gin, 1) -> audio (samples,) on the device;
        a view of a buffer that the next call of the same bucket overwrites. `noise`: the
        item's standard-normal prior draw (inter, n * latent_upsampling) (default: a fresh
        one); `noise_scale` (default: the decoder's)."""
        if codes.dim() != 1 or phones.dim() != 1 or ge.dim() != 3 or ge.shape[0] != 1:
            raise ValueError(
                f"need codes (n,), phones (m,) and ge (1, gin, 1), got {tuple(codes.shape)}, "
                f"{tuple(phones.shape)}, {tuple(ge.shape)}"
            )
        n, m = codes.numel(), phones.numel()
        key = self.bucket(n, m)
        # A graph does no range checks: an id out of range would read out of bounds.
        for name, ids, size in (
            ("codes", codes, CODEBOOK_SIZE),
            ("phones", phones, self.model.config.n_symbols),
        ):
            if ids.dtype not in (torch.int32, torch.int64):
                raise ValueError(f"{name} must be an integer tensor, got {ids.dtype}")
            low, high = int(ids.min()), int(ids.max())
            if low < 0 or high >= size:
                raise ValueError(f"{name} must lie in [0, {size}), got [{low}, {high}]")
        frames = n * self.model.config.latent_upsampling
        if noise is not None and tuple(noise.shape) != (self.model.config.inter_channels, frames):
            raise ValueError(
                f"noise must be (inter_channels, frames) = "
                f"({self.model.config.inter_channels}, {frames}), got {tuple(noise.shape)}"
            )
        scale = self.noise_scale if noise_scale is None else noise_scale
        if scale < 0:
            raise ValueError(f"noise_scale must be >= 0, got {scale}")
        if key not in self._graphs:
            self.capture(n, m)
        graph, b = self._graphs[key]
        if noise is None:
            b["noise"].normal_()
        else:
            b["noise"].zero_()
            b["noise"][0, :, :frames].copy_(noise)
        b["scale"].fill_(scale)
        b["codes"].zero_()
        b["codes"][0, 0, :n].copy_(codes)
        b["phones"].zero_()
        b["phones"][0, :m].copy_(phones)
        b["code_len"].fill_(n)
        b["phone_len"].fill_(m)
        b["ge"].copy_(ge)
        graph.replay()
        samples = n * self.model.config.latent_upsampling * self.model.config.samples_per_frame
        return b["audio"][:samples]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
