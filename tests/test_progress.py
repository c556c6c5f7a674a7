"""rlkit.core.progress: status lines off a terminal (fake clock, no sleeping), tqdm on one."""

import io

import pytest

from rlkit.core.progress import (INTERVAL_ENV, LineProgress, Progress, ProgressError, format_duration, progress,
                                 progress_interval)
from rlkit.errors import UserError


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_status_line_every_interval_with_rate_and_eta():
    clock, out = FakeClock(), io.StringIO()
    bar = progress(total=100, desc="gen", unit="step", stream=out, interval=30, clock=clock)
    assert isinstance(bar, LineProgress)
    for _ in range(10):  # 10 steps in 20 s: no line yet
        clock.now += 2
        bar.update(1)
    assert out.getvalue() == ""
    for _ in range(5):  # crosses 30 s at step 15
        clock.now += 2
        bar.update(1)
    lines = out.getvalue().splitlines()
    assert lines == ["gen: 15/100 step (15%), 0.5 step/s, elapsed 30s, ETA 2m50s"]  # 85 steps at 0.5/s = 170 s
    for _ in range(14):  # next line only 30 s after the previous one
        clock.now += 2
        bar.update(1)
    assert len(out.getvalue().splitlines()) == 1
    clock.now += 2
    bar.set_postfix(ret="1.50")
    bar.update(1)
    assert out.getvalue().splitlines()[-1] == "gen: 30/100 step (30%), 0.5 step/s, elapsed 1m00s, ETA 2m20s | ret=1.50"


def test_close_prints_a_final_line_once_and_iteration_counts():
    clock, out = FakeClock(), io.StringIO()

    def items():
        for i in range(4):
            clock.now += 1
            yield i

    bar = progress(items(), total=4, desc="eval", unit="itr", stream=out, interval=30, clock=clock)
    assert list(bar) == [0, 1, 2, 3]
    bar.close()  # idempotent
    assert out.getvalue().splitlines() == ["eval: 4/4 itr (100%), 1 itr/s, elapsed 4s (done)"]


def test_rate_counts_only_this_session_when_resuming():
    clock, out = FakeClock(), io.StringIO()
    bar = progress(range(8, 10), total=10, initial=8, unit="itr", stream=out, interval=5, clock=clock)
    it = iter(bar)
    next(it)
    clock.now += 10
    next(it)  # item 9 handed out after item 8 was counted: 9/10 in 10 s
    assert out.getvalue().splitlines() == ["9/10 itr (90%), 0.1 itr/s, elapsed 10s, ETA 10s"]


def test_unknown_total_and_zero_elapsed():
    clock, out = FakeClock(), io.StringIO()
    bar = progress(desc="x", unit="ep", stream=out, interval=1, clock=clock)
    assert bar.status() == "x: 0 ep, ? ep/s, elapsed 0s"
    clock.now += 4
    bar.update(2)
    assert out.getvalue() == "x: 2 ep, 0.5 ep/s, elapsed 4s\n"


def test_interval_from_env_and_bad_values(monkeypatch):
    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    assert progress_interval() == 30.0
    monkeypatch.setenv(INTERVAL_ENV, "2.5")
    assert progress_interval() == 2.5 and progress_interval(7) == 7.0
    clock, out = FakeClock(), io.StringIO()
    bar = progress(total=10, stream=out, clock=clock)  # the env var applies
    clock.now += 2.5
    bar.update()
    assert out.getvalue().startswith("1/10 it (10%)")
    monkeypatch.setenv(INTERVAL_ENV, "soon")
    with pytest.raises(ProgressError, match=INTERVAL_ENV) as err:
        progress(total=3, stream=io.StringIO())
    assert isinstance(err.value, UserError) and "\n" not in str(err.value)
    for bad in (0, -1, float("nan")):
        with pytest.raises(ProgressError):
            progress_interval(bad)


def test_terminal_gets_tqdm_and_disabled_shows_nothing():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    bar = progress(total=3, desc="bar", stream=out)
    assert not isinstance(bar, LineProgress)
    bar.update(3)
    bar.close()
    assert "bar" in out.getvalue() and "3/3" in out.getvalue()
    quiet = progress(range(3), enabled=False, stream=out)
    assert type(quiet) is Progress and list(quiet) == [0, 1, 2] and quiet.n == 3


def test_format_duration():
    assert [format_duration(s) for s in (0, 59.4, 61, 3599, 3600 * 2 + 300)] == ["0s", "59s", "1m01s", "59m59s",
                                                                                   "2h05m"]
    assert format_duration(float("inf")) == "?"


@pytest.mark.parametrize("handler_kind", ["console", "plain"])
def test_log_lines_go_above_an_open_bar_not_into_its_line(handler_kind):
    """On a terminal, a run's log line must start its own line, not continue the bar's text."""
    import logging

    from rlkit.core.progress import ConsoleHandler

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    log = logging.getLogger(f"test-progress-{handler_kind}")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = ConsoleHandler(stream) if handler_kind == "console" else logging.StreamHandler(stream)
    log.addHandler(handler)
    try:
        bar = progress(total=10, desc="meta-train", stream=stream)
        bar.update(3)
        log.info("iteration 3: Online -17.2")
        bar.close()
        log.info("after the bar")
    finally:
        log.removeHandler(handler)
    pieces = [p for chunk in stream.getvalue().split("\r") for p in chunk.split("\n")]
    starts_its_line = "iteration 3: Online -17.2" in pieces
    assert starts_its_line == (handler_kind == "console")  # a plain handler writes into the bar's line
    assert "after the bar" in pieces
