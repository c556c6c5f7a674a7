"""Progress of long loops: a tqdm bar on a terminal, a status line every N seconds elsewhere.

tqdm hides itself when its stream is not a terminal (``disable=None``), so a
job whose output goes to a file, a pipe, a scheduler or a Ray worker showed
nothing for minutes. :func:`progress` keeps the bar on a terminal and, off
one, prints ``DESC: done/total UNIT (pct), rate, elapsed, ETA`` at most every
``interval`` seconds (default 30, or the ``CSRO_PROGRESS_INTERVAL``
environment variable) plus one line when the loop closes, flushed each time.

Lines are written from :meth:`Progress.update`, never from a thread: a loop
that stops calling it prints nothing until it calls again.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from rlkit.errors import UserError

INTERVAL_ENV = "CSRO_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0


class ProgressError(UserError, ValueError):
    """A progress interval that is not a positive number of seconds."""


def progress_interval(interval: float | None = None) -> float:
    """Seconds between status lines: ``interval``, else ``$CSRO_PROGRESS_INTERVAL``, else 30."""
    source = "interval"
    if interval is None:
        raw = os.environ.get(INTERVAL_ENV, "").strip()
        if not raw:
            return DEFAULT_INTERVAL
        source = INTERVAL_ENV
        try:
            interval = float(raw)
        except ValueError:
            raise ProgressError(f"{INTERVAL_ENV} must be a number of seconds, got {raw!r}") from None
    if not (math.isfinite(interval) and interval > 0):
        raise ProgressError(f"{source} must be a positive number of seconds, got {interval!r}")
    return float(interval)


def format_duration(seconds: float) -> str:
    """``45s``, ``3m07s``, ``2h05m``; ``?`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed or a stream without isatty
        return False


class Progress:
    """The interface both kinds share: ``update``, ``set_postfix``, ``set_description``, ``close``, iteration."""

    def __init__(self, iterable: Iterable | None, total: int | None, initial: int):
        self._iterable = iterable
        self.total = total
        self.n = int(initial)

    def update(self, n: int = 1) -> None:
        self.n += int(n)

    def set_postfix(self, **values: Any) -> None:
        pass

    def set_description(self, desc: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator:
        if self._iterable is None:
            raise TypeError("this progress has no iterable to iterate over")
        for item in self._iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# How many tqdm bars are being drawn now: while one is, console log lines go through tqdm.write
# (above the bar) instead of being written into the bar's line.
_open_bars = 0


class ConsoleHandler(logging.StreamHandler):
    """A StreamHandler that, while a progress bar is drawn, writes its lines above the bar."""

    def emit(self, record: logging.LogRecord) -> None:
        if not _open_bars:
            super().emit(record)
            return
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging's own convention: report, never raise from emit
            self.handleError(record)


class _TqdmProgress(Progress):
    """A tqdm bar (on a terminal)."""

    def __init__(self, iterable, total, initial, desc, unit, stream):
        global _open_bars
        super().__init__(iterable, total, initial)
        from tqdm import tqdm

        self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, dynamic_ncols=True)
        self._open = True
        _open_bars += 1

    def update(self, n: int = 1) -> None:
        super().update(n)
        self._bar.update(n)

    def set_postfix(self, **values: Any) -> None:
        self._bar.set_postfix(**values)

    def set_description(self, desc: str) -> None:
        self._bar.set_description_str(desc)

    def close(self) -> None:
        global _open_bars
        if self._open:
            self._open = False
            _open_bars -= 1
        self._bar.close()


class LineProgress(Progress):
    """Off a terminal: one flushed status line at most every ``interval`` seconds, and one at close."""

    def __init__(self, iterable, total, initial, desc, unit, stream, interval, clock):
        super().__init__(iterable, total, initial)
        self.desc, self.unit, self.stream, self.interval, self.clock = desc, unit, stream, interval, clock
        self._start = self._last = clock()
        self._initial = int(initial)
        self._postfix = ""
        self._closed = False

    def update(self, n: int = 1) -> None:
        super().update(n)
        if self.clock() - self._last >= self.interval:
            self._emit()

    def set_postfix(self, **values: Any) -> None:
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._emit(final=True)

    def status(self, now: float | None = None) -> str:
        """The status line: done/total, percent, rate, elapsed and ETA (without a trailing newline)."""
        now = self.clock() if now is None else now
        elapsed = max(now - self._start, 0.0)
        done = self.n - self._initial
        rate = done / elapsed if elapsed > 0 else math.nan
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            parts = [f"{head}{self.n}/{self.total} {self.unit} ({100.0 * self.n / self.total:.0f}%)"]
        else:
            parts = [f"{head}{self.n} {self.unit}"]
        parts.append(f"{rate:.3g} {self.unit}/s" if math.isfinite(rate) else f"? {self.unit}/s")
        parts.append(f"elapsed {format_duration(elapsed)}")
        if self.total and self.n < self.total:
            eta = (self.total - self.n) / rate if math.isfinite(rate) and rate > 0 else math.nan
            parts.append(f"ETA {format_duration(eta)}")
        line = ", ".join(parts)
        return f"{line} | {self._postfix}" if self._postfix else line

    def _emit(self, final: bool = False) -> None:
        self._last = self.clock()
        try:
            self.stream.write(self.status(self._last) + (" (done)" if final and self.total and self.n >= self.total
                                                         else "") + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe must not stop the work
            pass


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, enabled: bool = True, stream: TextIO | None = None, interval: float | None = None,
             clock: Callable[[], float] = time.monotonic, tty: bool | None = None) -> Progress:
    """A progress display for a loop of ``total`` units (or over ``iterable``, counting its items).

    ``stream`` defaults to stderr; ``tty`` (default: ``stream.isatty()``)
    picks the tqdm bar or status lines; ``enabled=False`` shows nothing.
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = int(initial) + len(iterable)
    if not enabled:
        return Progress(iterable, total, initial)
    stream = sys.stderr if stream is None else stream
    if _is_tty(stream) if tty is None else tty:
        return _TqdmProgress(iterable, total, initial, desc, unit, stream)
    return LineProgress(iterable, total, initial, desc, unit, stream, progress_interval(interval), clock)
