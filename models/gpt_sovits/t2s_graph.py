"""CUDA-graph replay of the text-to-semantic decode step.

`Text2SemanticDecoder.decode_step` with `kv_len=None` uses only fixed shapes and device-side
positions, so one step can be captured once per KV cache and replayed for every token: the
token and position are copied into static input buffers and the logits are read from a static
output buffer. This removes the per-layer kernel-launch overhead that dominates batch-1
decoding on a GPU.
"""

from __future__ import annotations

import torch
from torch import Tensor

from voiceseal_models.gpt_sovits.graph_capture import CAPTURE_LOCK
from voiceseal_models.gpt_sovits.t2s_network import KVCache, Text2SemanticDecoder


class CUDAGraphStep:
    """`decode_step` for one cache, captured in a CUDA graph on construction.

    Args:
        network: the decoder (on a CUDA device, in eval mode).
        cache: the cache returned by `prefill`; the graph reads and writes its tensors, so the
            same cache object must be passed to every call.
        warmup: eager runs before capture (CUDA graphs need the kernels' lazy setup done).
    """

    def __init__(self, network: Text2SemanticDecoder, cache: KVCache, warmup: int = 2) -> None:
        device = cache.k.device
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA cache, got one on {device}")
        self.cache = cache
        self.tokens = torch.zeros(cache.batch_size, dtype=torch.int64, device=device)
        # Warm up on the cache's last slot: prefill never wrote it, and decoding overwrites it
        # before reading it if a sequence ever gets that long.
        self.pos = cache.capacity - 1 - cache.text_len
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                network.decode_step(cache, self.tokens, self.pos)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with CAPTURE_LOCK, torch.cuda.graph(self.graph):
            self.logits = network.decode_step(cache, self.tokens, self.pos)

    def __call__(self, cache: KVCache, tokens: Tensor, pos: Tensor) -> Tensor:
        """Same contract as `decode_step(cache, tokens, pos)`; returns the static logits buffer
        (B, vocab), valid until the next call."""
        if cache is not self.cache:
            raise ValueError("this CUDA graph was captured for another KV cache")
        self.tokens.copy_(tokens)
        self.pos.copy_(pos)
        self.graph.replay()
        return self.logits
