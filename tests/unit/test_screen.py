"""Where a screen replay starts, and the terminal modes set before it."""

from __future__ import annotations

from claudenest.relay.screen import ModeTracker, line_start


def fed(*chunks: bytes) -> ModeTracker:
    tracker = ModeTracker()
    offset = 0
    for chunk in chunks:
        tracker.feed(offset, chunk)
        offset += len(chunk)
    return tracker


def test_plain_output_has_no_wipe_and_no_modes() -> None:
    tracker = fed(b"line one\r\nline two\r\n" * 100)
    assert tracker.last_wipe is None
    assert tracker.prelude(0) == tracker.prelude(10_000) == ""


def test_the_newest_wipe_is_where_a_replay_starts() -> None:
    tracker = fed(b"old stuff\x1b[2J", b"drawn\x1b[H\x1b[Jredrawn", b"\x1bcreset")
    assert tracker.last_wipe == len(b"old stuff\x1b[2Jdrawn\x1b[H\x1b[Jredrawn")
    assert fed(b"abc\x1b[3J").last_wipe == 3


def test_sequences_split_between_frames_are_found() -> None:
    tracker = fed(b"text\x1b[?104", b"9h\x1b[?25", b"l more \x1b[2", b"J")
    assert tracker.in_alt
    assert tracker.modes[25] == (False, len(b"text\x1b[?1049h"))
    assert tracker.last_wipe == len(b"text\x1b[?1049h\x1b[?25l more ")


def test_prelude_restores_modes_switched_before_the_replay() -> None:
    setup = b"\x1b[?1049h\x1b[?25l\x1b[?2004h\x1b[?1h\x1b[?1000;1006h"
    tracker = fed(setup, b"frame" * 100)
    prelude = tracker.prelude(len(setup) + 50)
    for mode in ("1049h", "25l", "2004h", "1h", "1000h", "1006h"):
        assert f"\x1b[?{mode}" in prelude
    # A mode switched inside the replay is left to the replay; default states are not repeated.
    assert tracker.prelude(0) == ""
    assert fed(b"\x1b[?25l\x1b[?25h\x1b[?2004h\x1b[?2004l").prelude(100) == ""


def test_leaving_the_alternate_screen_brings_back_the_main_screens_wipe() -> None:
    main = b"$ clear\x1b[H\x1b[2J$ vim\r\n"
    tracker = fed(main, b"\x1b[?1049h\x1b[2Jvim screen", b"\x1b[?1049l$ ")
    # The main screen shows what was drawn after its own wipe; vim's wipes do not count once it left.
    assert not tracker.in_alt
    assert tracker.last_wipe == len(b"$ clear\x1b[H")
    assert tracker.prelude(tracker.last_wipe) == ""


def test_a_replay_starts_at_a_line_start() -> None:
    assert line_start(b"tail of a line\nnext line\n", 1000) == 1000 + len(b"tail of a line\n")
    assert line_start(b"3;1Hcell\x1b[4;1Hcell", 5) == 5 + len(b"3;1Hcell")  # not in the middle of a sequence
    assert line_start(b"no newline at all", 5) == 5
