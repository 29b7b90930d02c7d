"""Inference facade for the text-to-semantic model: load, teacher-force, decode, stream.

Decoding reproduces the official `infer_panel_naive` / `infer_panel_batch_infer` behaviour
(fixture README "Official decoding behaviour" 1-6):

* step 0 runs `[text ; prompt]` in one pass (`prefill`); later steps feed one token through
  the KV cache (`decode_step`);
* for steps 0..10 the EOS column is dropped before sampling, so the first EOS can come at
  step 11;
* the sampler penalises the logits in place and the EOS test ("argmax is EOS or the sample is
  EOS") sees the penalised logits;
* on EOS the EOS token is not kept and `idx` is the step index (= number of kept tokens);
* the early stop fires when the generated count exceeds `early_stop_num`: the single decoder
  keeps every token (so the pipeline's `y[-idx:]` drops the *first* one), the batch decoder
  drops the last one (`y[:-1]`), exactly as upstream;
* the step cap `max_steps` (official 1500) stops like the early stop;
* without a prompt ("reference-free") `idx` is reported as 0, so `y[-idx:]` is everything.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from voiceseal_models.gpt_sovits.checkpoint import (
    CheckpointError,
    GPTCheckpoint,
    init_device,
    load_gpt_checkpoint,
)
from voiceseal_models.gpt_sovits.sampling import SamplingParams, sample_next
from voiceseal_models.gpt_sovits.t2s_graph import CUDAGraphStep
from voiceseal_models.gpt_sovits.t2s_network import KVCache, T2SConfig, Text2SemanticDecoder

__all__ = ["KVCache", "T2SConfig", "T2SResult", "Text2Semantic", "Text2SemanticDecoder"]

# The official decoder never lets EOS win during its first 11 steps (>= 0.4 s of audio).
MIN_STEPS_BEFORE_EOS = 11
DEFAULT_MAX_STEPS = 1500
StopReason = Literal["eos", "early_stop", "max_steps"]


@dataclass(frozen=True)
class T2SResult:
    """One decoded sequence, in the form the official decoder returns it.

    Attributes:
        y: (prompt_len + n,) int64: the prompt followed by the kept generated tokens.
        idx: the official "idx" (step index at the stop; 0 in reference-free mode).
        prompt_len: number of prompt tokens at the front of `y`.
        stop: why decoding ended.
        step_logits: raw logits per step, (steps, vocab), when requested; for a batch row,
            only the steps in which the row was active.
    """

    y: Tensor
    idx: int
    prompt_len: int
    stop: StopReason
    step_logits: Tensor | None = None

    @property
    def generated(self) -> Tensor:
        """Every kept generated token, (n,)."""
        return self.y[self.prompt_len :]

    @property
    def tokens(self) -> Tensor:
        """What the official TTS pipeline hands to SoVITS: `y[-idx:]` (Python slicing, so
        idx 0 means the whole `y`)."""
        return self.y[-self.idx :]


class Text2Semantic:
    """Loaded text-to-semantic model with `torch.inference_mode` decoding entry points."""

    def __init__(self, network: Text2SemanticDecoder) -> None:
        self.network = network.eval()
        self.config = network.config

    @property
    def device(self) -> torch.device:
        return self.network.bert_proj.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.network.bert_proj.weight.dtype

    @property
    def default_early_stop_num(self) -> int:
        """What the official pipeline passes: 50 tokens/s x `data.max_sec`."""
        return 50 * self.config.max_sec

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: GPTCheckpoint | str | os.PathLike[str] | bytes,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Text2Semantic:
        """Build from an official GPT file; fp16 weights are cast to `dtype` (default fp32)."""
        ckpt = (
            checkpoint if isinstance(checkpoint, GPTCheckpoint) else load_gpt_checkpoint(checkpoint)
        )
        config = T2SConfig.from_checkpoint_config(ckpt.config)
        prefix = "model."
        stray = [k for k in ckpt.weights if not k.startswith(prefix)]
        if stray:
            raise ValueError(f"GPT weights without the '{prefix}' prefix: {stray[:5]}")
        with init_device(device, ckpt.weights):  # every tensor comes from the file
            network = Text2SemanticDecoder(config)
        state = {k[len(prefix) :]: v for k, v in ckpt.weights.items()}
        try:
            network.load_official_state(state, device=device, dtype=dtype)
        except RuntimeError as exc:
            where = ckpt.path or "GPT checkpoint"
            raise CheckpointError(
                f"{where}: weights do not fit the model its config describes: {exc}"
            ) from exc
        return cls(network)

    # ------------------------------------------------------------------ helpers

    def _text(self, phones: Tensor, bert: Tensor) -> Tensor:
        """Phones (T,) and BERT (1024, T) -> embeddings (1, T, D)."""
        if phones.dim() != 1 or bert.dim() != 2:
            raise ValueError(
                f"expected phones (T,) and bert (1024, T), "
                f"got {tuple(phones.shape)} and {tuple(bert.shape)}"
            )
        if phones.numel() == 0:
            raise ValueError("cannot decode an empty phoneme sequence")
        return self.network.embed_text(
            phones.to(self.device, torch.int64)[None], bert.to(self.device, self.dtype)[None]
        )

    def _prompt(self, prompt: Tensor | None, batch: int) -> Tensor | None:
        if prompt is None:
            return None
        prompt = prompt.to(self.device, torch.int64)
        if prompt.dim() == 1:
            prompt = prompt[None].expand(batch, -1)
        if prompt.dim() != 2 or prompt.shape[0] != batch:
            raise ValueError(f"prompt must be (T,) or ({batch}, T), got {tuple(prompt.shape)}")
        if prompt.numel() and (int(prompt.min()) < 0 or int(prompt.max()) >= self.config.eos):
            raise ValueError(f"prompt semantic ids must lie in [0, {self.config.eos})")
        return prompt

    def _generator(
        self, seed: int | None, generator: torch.Generator | None
    ) -> torch.Generator | None:
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        if seed is None:
            return generator
        made = torch.Generator(device=self.device)
        made.manual_seed(seed)
        return made

    # ------------------------------------------------------------------ teacher forcing

    @torch.inference_mode()
    def teacher_forced_logits(
        self,
        phones: Tensor,
        phone_lens: Tensor,
        bert: Tensor,
        semantic: Tensor,
        semantic_lens: Tensor,
    ) -> Tensor:
        """(B, Ty + 1, vocab) training-path logits, see the network's `teacher_forced_logits`."""
        dev = self.device
        return self.network.teacher_forced_logits(
            phones.to(dev, torch.int64),
            phone_lens.to(dev),
            bert.to(dev, self.dtype),
            semantic.to(dev, torch.int64),
            semantic_lens.to(dev),
        )

    # ------------------------------------------------------------------ single decode

    def _decode(
        self,
        phones: Tensor,
        bert: Tensor,
        prompt_semantic: Tensor | None,
        params: SamplingParams,
        early_stop_num: int,
        max_steps: int,
        generator: torch.Generator | None,
        record_logits: bool,
        static_cache: bool,
        cuda_graph: bool,
    ) -> Generator[int, None, T2SResult]:
        """Core single-sequence loop: yields each kept token, returns the result."""
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        eos = self.config.eos
        x = self._text(phones, bert)
        prompt = self._prompt(prompt_semantic, 1)
        prefix = 0 if prompt is None else prompt.shape[1]
        capacity = x.shape[1] + prefix + max_steps
        cache, logits = self.network.prefill(x, None, prompt, capacity)
        graph = CUDAGraphStep(self.network, cache) if cuda_graph else None
        y = (
            prompt
            if prompt is not None
            else torch.zeros(1, 0, dtype=torch.int64, device=self.device)
        )
        raw_steps: list[Tensor] = []
        stop: StopReason | None = None
        idx = 0
        pos = torch.zeros((), dtype=torch.int64, device=self.device)
        for idx in range(max_steps):
            if idx > 0:
                pos.fill_(prefix + idx - 1)
                if graph is not None:
                    logits = graph(cache, y[:, -1], pos)
                else:
                    kv = None if static_cache else x.shape[1] + prefix + idx
                    logits = self.network.decode_step(cache, y[:, -1], pos, kv_len=kv)
            if record_logits:
                raw_steps.append(logits[0].clone())
            if idx < MIN_STEPS_BEFORE_EOS:
                logits = logits[:, :-1]
            sample = sample_next(logits, y, params, generator)
            y = torch.cat([y, sample[:, None]], dim=1)
            if early_stop_num != -1 and y.shape[1] - prefix > early_stop_num:
                stop = "early_stop"
            if int(logits[0].argmax()) == eos or int(sample[0]) == eos:
                stop = "eos"
                y = y[:, :-1]
            elif stop is None and idx == max_steps - 1:
                stop = "max_steps"
            if stop != "eos":
                yield int(y[0, -1])
            if stop is not None:
                break
        assert stop is not None
        return T2SResult(
            y=y[0].clone(),
            idx=0 if prompt is None else idx,
            prompt_len=prefix,
            stop=stop,
            step_logits=torch.stack(raw_steps) if record_logits else None,
        )

    @torch.inference_mode()
    def generate(
        self,
        phones: Tensor,
        bert: Tensor,
        prompt_semantic: Tensor | None,
        *,
        top_k: int = 15,
        top_p: float = 1.0,
        temperature: float = 1.0,
        repetition_penalty: float = 1.35,
        early_stop_num: int = -1,
        max_steps: int = DEFAULT_MAX_STEPS,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        record_logits: bool = False,
        static_cache: bool = False,
        cuda_graph: bool = False,
    ) -> T2SResult:
        """Decode semantic tokens for one text.

        Args:
            phones: (Tx,) phoneme ids of prompt text + target text.
            bert: (1024, Tx) BERT features (zeros for non-Chinese text).
            prompt_semantic: (Ty,) semantic ids of the reference audio, or None for
                reference-free decoding.
            early_stop_num: -1 disables; the official pipeline passes `default_early_stop_num`.
            seed / generator: randomness for the sampler (top_k=1 is deterministic anyway).
            record_logits: keep the raw logits of every step in the result.
            static_cache: attend over the whole preallocated cache with a mask (the CUDA-graph
                friendly path) instead of the filled prefix only.
            cuda_graph: (CUDA only) capture the static decode step once after the prompt pass
                and replay it for every token.
        """
        loop = self._decode(
            phones,
            bert,
            prompt_semantic,
            SamplingParams(top_k, top_p, temperature, repetition_penalty),
            early_stop_num,
            max_steps,
            self._generator(seed, generator),
            record_logits,
            static_cache,
            cuda_graph,
        )
        while True:
            try:
                next(loop)
            except StopIteration as done:
                return done.value

    def iter_tokens(
        self,
        phones: Tensor,
        bert: Tensor,
        prompt_semantic: Tensor | None,
        *,
        top_k: int = 15,
        top_p: float = 1.0,
        temperature: float = 1.0,
        repetition_penalty: float = 1.35,
        early_stop_num: int = -1,
        max_steps: int = DEFAULT_MAX_STEPS,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        cuda_graph: bool = False,
    ) -> Iterator[int]:
        """Yield each generated token as soon as it is decoded (EOS is never yielded).

        Same decoding as `generate`; note that after an early stop the official pipeline
        discards the first token (`y[-idx:]`), which a streaming consumer has already seen.
        """
        loop = self._decode(
            phones,
            bert,
            prompt_semantic,
            SamplingParams(top_k, top_p, temperature, repetition_penalty),
            early_stop_num,
            max_steps,
            self._generator(seed, generator),
            False,
            cuda_graph,
            cuda_graph,
        )
        while True:
            with torch.inference_mode():
                try:
                    token = next(loop)
                except StopIteration:
                    return
            yield token

    # ------------------------------------------------------------------ batched decode

    @torch.inference_mode()
    def generate_batch(
        self,
        phones: Sequence[Tensor],
        bert: Sequence[Tensor],
        prompt_semantic: Tensor | None,
        *,
        top_k: int = 15,
        top_p: float = 1.0,
        temperature: float = 1.0,
        repetition_penalty: float = 1.35,
        early_stop_num: int = -1,
        max_steps: int = DEFAULT_MAX_STEPS,
        pad_to: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        record_logits: bool = False,
    ) -> list[T2SResult]:
        """Decode several texts at once, like the official `infer_panel_batch_infer`.

        Texts are left-padded to `max(pad_to, longest)`; rows that reach EOS leave the batch
        (and the cache). All rows share one prompt: (Ty,) or (B, Ty) of equal lengths.
        Without a prompt the rows are decoded one by one, as upstream does.
        """
        if len(phones) != len(bert) or not phones:
            raise ValueError(
                f"need as many bert features as texts (got {len(phones)} and {len(bert)})"
            )
        params = SamplingParams(top_k, top_p, temperature, repetition_penalty)
        gen = self._generator(seed, generator)
        if prompt_semantic is None:
            return [
                self.generate(
                    p,
                    b,
                    None,
                    top_k=top_k,
                    top_p=top_p,
                    temperature=temperature,
                    repetition_penalty=repetition_penalty,
                    early_stop_num=early_stop_num,
                    max_steps=max_steps,
                    generator=gen,
                    record_logits=record_logits,
                )
                for p, b in zip(phones, bert, strict=True)
            ]
        return self._decode_batch(
            phones,
            bert,
            prompt_semantic,
            params,
            early_stop_num,
            max_steps,
            pad_to,
            gen,
            record_logits,
        )

    def _decode_batch(
        self,
        phones: Sequence[Tensor],
        bert: Sequence[Tensor],
        prompt_semantic: Tensor,
        params: SamplingParams,
        early_stop_num: int,
        max_steps: int,
        pad_to: int | None,
        generator: torch.Generator | None,
        record_logits: bool,
    ) -> list[T2SResult]:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        eos, n = self.config.eos, len(phones)
        texts = [self._text(p, b)[0] for p, b in zip(phones, bert, strict=True)]
        width = max([pad_to or 0] + [t.shape[0] for t in texts])
        x = torch.zeros(n, width, self.config.hidden_dim, device=self.device, dtype=self.dtype)
        x_valid = torch.zeros(n, width, dtype=torch.bool, device=self.device)
        for i, t in enumerate(texts):
            # Left padding keeps every row's last text slot adjacent to its prompt.
            x[i, width - t.shape[0] :] = t
            x_valid[i, width - t.shape[0] :] = True
        prompt = self._prompt(prompt_semantic, n)
        assert prompt is not None
        prefix = prompt.shape[1]
        cache, logits = self.network.prefill(x, x_valid, prompt, width + prefix + max_steps)
        y = prompt
        rows = list(range(n))  # original index of each active row
        results: list[T2SResult | None] = [None] * n
        raw: list[list[Tensor]] = [[] for _ in range(n)]
        pos = torch.zeros((), dtype=torch.int64, device=self.device)

        def finish(kept: Tensor, row: int, idx: int, stop: StopReason) -> None:
            # Upstream keeps y[:-1] in both cases: the EOS on an EOS stop, the newest token on
            # an early stop or at the step cap.
            results[row] = T2SResult(
                y=kept[:-1].clone(),
                idx=idx,
                prompt_len=prefix,
                stop=stop,
                step_logits=torch.stack(raw[row]) if record_logits else None,
            )

        for idx in range(max_steps):
            if idx > 0:
                pos.fill_(prefix + idx - 1)
                logits = self.network.decode_step(cache, y[:, -1], pos, kv_len=width + prefix + idx)
            if record_logits:
                for i, row in enumerate(rows):
                    raw[row].append(logits[i].clone())
            if idx < MIN_STEPS_BEFORE_EOS:
                logits = logits[:, :-1]
            sample = sample_next(logits, y, params, generator)
            y = torch.cat([y, sample[:, None]], dim=1)
            ended = (sample == eos) | (logits.argmax(dim=-1) == eos)
            if bool(ended.any()):
                for i in ended.nonzero().flatten().tolist():
                    finish(y[i], rows[i], idx, "eos")
                keep = (~ended).nonzero().flatten()
                rows = [rows[i] for i in keep.tolist()]
                y = y.index_select(0, keep)
                cache = cache.select_rows(keep)
            if not rows:
                break
            over = early_stop_num != -1 and y.shape[1] - prefix > early_stop_num
            if over or idx == max_steps - 1:
                for i, row in enumerate(rows):
                    finish(y[i], row, idx, "early_stop" if over else "max_steps")
                break
        done = [r for r in results if r is not None]
        assert len(done) == n, "every row ends by EOS, early stop or the step cap"
        return done
