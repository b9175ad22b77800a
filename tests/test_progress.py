"""Progress output: a status line rewritten in place on a terminal, whole lines elsewhere, and
an error that ends an open line before its message."""
import io

import pytest

from vae_numpy.commands import progress
from vae_numpy.commands.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def no_wait(monkeypatch):
    monkeypatch.setattr(progress, "TTY_EVERY", 0.0)
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)


def test_on_a_terminal_the_status_is_rewritten_and_a_line_replaces_it(no_wait):
    stream = Terminal()
    meter = Progress(stream)
    meter.status("batch 1/3")
    meter.status("batch 2/3, longer")
    meter.status("batch 3")
    meter.line("epoch 1 done")
    # each rewrite pads over the longer text before it
    assert stream.getvalue() == ("\rbatch 1/3" + "\rbatch 2/3, longer" + "\rbatch 3" + " " * 10
                                 + "\repoch 1 done\n")


def test_into_a_log_every_status_is_a_whole_line_without_carriage_returns(no_wait):
    stream = io.StringIO()
    meter = Progress(stream)
    meter.status("batch 1/3")
    meter.status("batch 2/3")
    meter.line("epoch 1 done")
    assert stream.getvalue() == "batch 1/3\nbatch 2/3\nepoch 1 done\n"


def test_into_a_log_a_status_waits_log_every_seconds_and_force_does_not_skip_it(monkeypatch):
    stream = io.StringIO()
    meter = Progress(stream)
    meter.status("first")  # the first one at once
    meter.status("second")
    meter.status("evaluating", force=True)  # force is for terminals only
    meter.line("summary")
    assert stream.getvalue() == "first\nsummary\n"
    assert progress.LOG_EVERY >= 5  # "every ~10 s on long work"


def test_on_a_terminal_force_writes_at_once():
    stream = Terminal()
    meter = Progress(stream)
    meter.status("a")
    meter.status("b")  # within TTY_EVERY: skipped
    meter.status("evaluating", force=True)
    assert stream.getvalue() == "\ra\revaluating"


def test_an_error_ends_the_open_line_first():
    stream = Terminal()
    with pytest.raises(ValueError):
        with Progress(stream) as meter:
            meter.status("batch 7/9")
            raise ValueError("diverged")
    assert stream.getvalue() == "\rbatch 7/9\n"  # the message that follows starts a new line


def test_disabled_and_delayed_progress_write_nothing():
    stream = Terminal()
    Progress(stream, enabled=False).status("x")
    delayed = Progress(stream, delay=60.0)
    delayed.status("x")
    delayed.line("done")  # a permanent line is still written
    assert stream.getvalue() == "done\n" and not delayed.shown
