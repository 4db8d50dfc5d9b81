"""The modes `sessions attach` tracks in the user's terminal: what a prelude adds, and how detach hands it back."""

from __future__ import annotations

from claudenest.cli.terminal_modes import TerminalModes

TUI_ON = b"\x1b[?1049h\x1b[?25l\x1b[?2004h\x1b[?1000;1006h\x1b[?1h\x1b="


def test_a_tui_s_modes_are_switched_off_on_detach_and_the_main_screen_is_back() -> None:
    modes = TerminalModes()
    modes.feed(b"$ vim\r\n" + TUI_ON + b"\x1b[Hfile contents")
    restore = modes.restore()
    for sequence in (b"\x1b[?1000l", b"\x1b[?1006l", b"\x1b[?2004l", b"\x1b[?1l", b"\x1b>", b"\x1b[?1049l"):
        assert sequence in restore
    assert restore.endswith(b"\x1b[?25h")  # the cursor shown, last, on the main screen
    assert restore.index(b"\x1b[?1049l") > restore.index(b"\x1b[?2004l")


def test_modes_the_program_switched_off_again_are_left_alone() -> None:
    modes = TerminalModes()
    modes.feed(TUI_ON + b"\x1b[?1000;1006l\x1b[?2004l\x1b[?1l\x1b>\x1b[?25h\x1b[?1049l$ ")
    # Only plain colours and the cursor: no 1049l, which would move the cursor to where vim saved it.
    assert modes.restore() == b"\x1b[0m\x1b[?25h"


def test_a_sequence_split_across_writes_counts_and_a_full_reset_clears_everything() -> None:
    modes = TerminalModes()
    modes.feed(b"text\x1b[?10")
    modes.feed(b"49")
    modes.feed(b"h\x1b")
    modes.feed(b"[?2004h")
    assert modes.is_on(1049)
    assert modes.is_on(2004)
    modes.feed(b"\x1bc")
    assert not modes.is_on(1049)
    assert not modes.is_on(2004)
    assert modes.is_on(25)


def test_a_prelude_is_written_whole_to_a_fresh_terminal_and_not_again_on_a_resume() -> None:
    modes = TerminalModes()
    prelude = TUI_ON.decode()
    assert modes.prelude_to_write(prelude) == TUI_ON
    assert modes.is_on(1049)
    assert not modes.is_on(25)
    assert modes.keypad
    # A resume from where this terminal is: the same modes, nothing to write (1049h again would save the cursor).
    assert modes.prelude_to_write(prelude) == b""


def test_a_prelude_writes_only_what_differs_from_what_the_terminal_shows() -> None:
    modes = TerminalModes()
    modes.feed(b"\x1b[?1049h\x1b[?1000h")
    assert modes.prelude_to_write("\x1b[?1049h\x1b[?1000;1006h\x1b[?25l") == b"\x1b[?1006h\x1b[?25l"
    # A sequence it does not track passes through as it is.
    assert modes.prelude_to_write("\x1b[?7l\x1b[4 q") == b"\x1b[?7l\x1b[4 q"
