"""GPU timings of the PyOpenGL backend, for benchmarks.

Timings use `GL_TIMESTAMP` queries (`glQueryCounter` before and after), which
unlike `GL_TIME_ELAPSED` may nest; they are resolved lazily (on reading
`timings` or on `resolve()`), so timing does not stall the pipeline.
"""
from __future__ import annotations

import contextlib
import ctypes

import numpy as np


class GpuTimer:
    """Named GPU time spans: explicit ones (`begin`/`end`, `span`) and, while
    `enabled`, one per dispatch or draw (`auto`)."""

    def __init__(self, GL, context, enabled: bool = False):
        self.GL, self._context = GL, context
        self.enabled = enabled
        self._timings = {}
        self._pending = []  # (name, begin query, end query)
        self._open = []  # stack of (name, begin query) for begin/end

    def _timestamp(self):
        GL = self.GL
        query = int(np.ravel(GL.glGenQueries(1))[0])
        GL.glQueryCounter(query, GL.GL_TIMESTAMP)
        return query

    def begin(self, name):
        with self._context.current():
            self._open.append((name, self._timestamp()))

    def end(self):
        if not self._open:
            raise RuntimeError("end_timer() without begin_timer()")
        with self._context.current():
            name, begin = self._open.pop()
            self._pending.append((name, begin, self._timestamp()))

    @contextlib.contextmanager
    def span(self, name):
        """Time the GPU work submitted inside the block under `name`."""
        self.begin(name)
        try:
            yield
        finally:
            self.end()

    @contextlib.contextmanager
    def auto(self, name):
        """`span` when `enabled`, else nothing; the context must be current."""
        if not self.enabled:
            yield
            return
        begin = self._timestamp()
        yield
        self._pending.append((name, begin, self._timestamp()))

    def resolve(self):
        if not self._pending:
            return
        GL = self.GL
        with self._context.current():
            for name, begin, end in self._pending:
                values = []
                for query in (begin, end):
                    result = ctypes.c_uint64()
                    GL.glGetQueryObjectui64v(query, GL.GL_QUERY_RESULT, ctypes.byref(result))
                    values.append(result.value)
                self._timings.setdefault(name, []).append((values[1] - values[0]) * 1e-9)
                GL.glDeleteQueries(2, [begin, end])
            self._pending = []

    @property
    def timings(self) -> dict:
        """{name: [seconds, ...]} of the finished spans (waits for pending ones)."""
        self.resolve()
        return self._timings

    def reset(self):
        self.resolve()
        self._timings = {}
