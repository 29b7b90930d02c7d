"""`serving.kernel_launch` settings on any machine (the compile pass itself needs a GPU:
test_kernel_launch_cuda.py)."""

from __future__ import annotations

import os

import pytest

from voiceseal_models.gpt_sovits.serving.kernel_launch import compile_threads


def test_compile_threads_follow_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICESEAL_COMPILE_THREADS", "3")
    assert compile_threads() == 3
    monkeypatch.delenv("VOICESEAL_COMPILE_THREADS")
    assert 1 <= compile_threads() <= min(32, len(os.sched_getaffinity(0)))


@pytest.mark.parametrize("value", ["0", "-2", "four", "1.5"])
def test_a_bad_thread_setting_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("VOICESEAL_COMPILE_THREADS", value)
    with pytest.raises(ValueError, match="VOICESEAL_COMPILE_THREADS must be a positive integer"):
        compile_threads()
