"""Per-pass timing for the bench: off unless `timings` is a dict."""
from __future__ import annotations

import time


class PassTimer:
    def __init__(self, backend):
        self.backend = backend
        self.timings = None  # a dict name -> [seconds] to collect per-pass times (synchronising)

    def __call__(self, name: str, fn, *args, **kwargs):
        if self.timings is None:
            return fn(*args, **kwargs)
        self.backend.finish()
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.backend.finish()
        self.timings.setdefault(name, []).append(time.perf_counter() - start)
        return result
