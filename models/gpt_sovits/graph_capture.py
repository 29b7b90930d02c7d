"""One CUDA graph capture at a time in the process.

`torch.cuda.graph` captures on one stream shared by every thread unless it is given another
(`torch.cuda.graph.default_capture_stream`), and its default "global" mode forbids other
threads' unsafe CUDA calls while it captures. The serving code captures from several threads:
a scheduler's warm-up when a GPT file is first used, a SoVITS file's stream-window graphs when
it loads (the model pool loads different files side by side) or when a window meets a new
bucket. Every capture therefore holds this lock, so two never share that stream.
"""

from __future__ import annotations

import threading

CAPTURE_LOCK = threading.Lock()
