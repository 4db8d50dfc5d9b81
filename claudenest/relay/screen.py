"""Where to start a replay that redraws a session's current screen, and which terminal modes to set first.

A viewer attaching without an offset should see the screen as it is now, at once, without the relay running a
terminal emulator over every byte (pure-Python emulators manage about 1 MB/s, far below a terminal's bulk rate).
Two cheap facts get there:

- **Where the screen was last wiped**: a full reset (``ESC c``), an erase of the whole display (``CSI 2 J``,
  ``CSI 3 J``, ``CSI H CSI J``) or a switch into the alternate screen. Everything visible now was drawn after it,
  so a replay from there redraws the screen exactly. Used when it lies within ``screen_replay_bytes``.
- Otherwise, **a line start** about ``replay_limit_bytes`` back: scrolling output fills the screen with the lines
  after it, and a full-screen program repaints within that much output.

Modes a program switched on earlier and never off (alternate screen, hidden cursor, application cursor keys,
bracketed paste, mouse and focus reporting) would be missing from such a replay, so ``ModeTracker`` notes the last
switch of each as bytes arrive (a ``memchr`` for ESC per frame; a regex only over frames that have one) and the
attach sends them first as the ``prelude``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# DEC private modes worth restoring, by number; the alternate-screen variants are one mode for us (1049).
_TRACKED = {1, 25, 47, 1000, 1002, 1003, 1004, 1005, 1006, 1015, 1047, 1049, 2004}
_ALT_SCREEN = {47, 1047, 1049}
_DEFAULT_ON = {25}  # the cursor is visible unless hidden
_SEQUENCE = re.compile(rb"\x1b(?:\[\?([0-9;]{1,32})([hl])|\[[23]J|\[H\x1b\[0?J|c)")
_TAIL = 32  # a sequence split between two frames is found by scanning the last bytes of one with the next


@dataclass
class ModeTracker:
    modes: dict[int, tuple[bool, int]] = field(default_factory=dict)  # mode -> (on, offset of its last switch)
    # Offsets of the newest wipe of each screen. A wipe of the alternate screen says nothing about the main one,
    # which reappears as it was when the program leaves the alternate screen.
    main_wipe: int | None = None
    alt_wipe: int | None = None
    in_alt: bool = False
    _tail: bytes = b""
    _tail_offset: int = 0

    def feed(self, offset: int, data: bytes) -> None:
        if self._tail and self._tail_offset + len(self._tail) == offset:
            data, offset = self._tail + data, self._tail_offset
        self._tail = b""
        if b"\x1b" not in data:
            return
        for match in _SEQUENCE.finditer(data):
            at = offset + match.start()
            numbers, action = match.group(1), match.group(2)
            if numbers is None:
                self._wiped(at)
                continue
            for number in numbers.split(b";"):
                mode = int(number) if number.isdigit() else -1
                if mode not in _TRACKED:
                    continue
                on = action == b"h"
                if mode in _ALT_SCREEN:
                    mode = 1049
                    self.in_alt = on
                    if on:
                        self._wiped(at)
                self.modes[mode] = (on, at)
        escape = data.rfind(b"\x1b", max(0, len(data) - _TAIL))
        if escape >= 0:
            self._tail, self._tail_offset = data[escape:], offset + escape

    def _wiped(self, at: int) -> None:
        if self.in_alt:
            self.alt_wipe = at
        else:
            self.main_wipe = at

    @property
    def last_wipe(self) -> int | None:
        """Where a replay that redraws the screen on view now may start (None: no wipe seen)."""
        return self.alt_wipe if self.in_alt else self.main_wipe

    def prelude(self, start: int) -> str:
        """Escape sequences that put a fresh terminal into the modes in force just before ``start``.

        Modes switched at or after ``start`` are left out: the replay itself switches them.
        """
        parts = []
        for mode, (on, at) in sorted(self.modes.items()):
            if at >= start or on == (mode in _DEFAULT_ON):
                continue
            parts.append(f"\x1b[?{mode}{'h' if on else 'l'}")
        return "".join(parts)


def line_start(window: bytes, window_offset: int) -> int:
    """The first offset in ``window`` right after a line feed; in output without line feeds (a full-screen program
    that addresses the cursor), the first escape sequence; the window's own start when it has neither."""
    newline = window.find(b"\n")
    if newline >= 0:
        return window_offset + newline + 1
    escape = window.find(b"\x1b")
    return window_offset + max(escape, 0)
