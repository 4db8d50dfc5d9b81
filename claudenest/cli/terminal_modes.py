"""The terminal modes a session's output has switched on in the user's terminal, for ``sessions attach``.

Pure bookkeeping over the bytes written to the terminal (no I/O): which DEC private modes (``ESC [ ? n h`` / ``l``)
and keypad mode (``ESC =`` / ``ESC >``) are in force, so that attach can write a relay's prelude without repeating
what the terminal already has, and hand the terminal back on detach as a shell expects it: main screen, cursor
shown, no mouse reports, no bracketed paste, normal cursor keys.
"""

from __future__ import annotations

import re

_ALT_SCREENS = (1049, 1047, 47)
# Leaving these on makes the user's shell receive mouse reports, focus events or pastes wrapped in escapes.
_OFF_ON_EXIT = (1000, 1002, 1003, 1005, 1006, 1015, 1004, 2004, 1)
_CURSOR_VISIBLE = 25
# Modes whose default this class knows (off, the cursor shown); others (say 7, autowrap, on by default) it only tracks.
_KNOWN = frozenset((*_ALT_SCREENS, *_OFF_ON_EXIT, _CURSOR_VISIBLE))
_KEYPAD = "keypad"

# A mode switch, keypad on/off, or a full reset (RIS). Anything else passes through untouched.
_SEQUENCE = re.compile(rb"\x1b(?:\[\?([0-9;]*)([hl])|([=>c]))")
# The start of a sequence cut off at the end of a chunk: carried over to the next one.
_PARTIAL = re.compile(rb"\x1b(?:\[(?:\?[0-9;]*)?)?")
_CARRY_MAX = 64


class TerminalModes:
    """Modes in force after the bytes fed so far (a mode never switched counts as off, the cursor as shown)."""

    def __init__(self) -> None:
        self._private: dict[int, bool] = {}
        # The alternate screen is one state whichever of its three modes entered it; leaving uses the same one
        # (1049 also restores the cursor it saved on the way in).
        self._alt_screen: int | None = None
        self._keypad = False
        self._carry = b""

    def feed(self, data: bytes) -> None:
        """Bytes written to the terminal, in order; a sequence split across two calls counts once it is whole."""
        if self._carry:
            data = self._carry + data
        for match in _SEQUENCE.finditer(data):
            self._apply(match)
        tail = data[-_CARRY_MAX:]
        cut = tail.rfind(b"\x1b")
        self._carry = tail[cut:] if cut >= 0 and _PARTIAL.fullmatch(tail, cut) else b""

    def is_on(self, mode: int) -> bool:
        if mode in _ALT_SCREENS:
            return self._alt_screen is not None
        return self._private.get(mode, mode == _CURSOR_VISIBLE)

    @property
    def keypad(self) -> bool:
        return self._keypad

    def prelude_to_write(self, prelude: str) -> bytes:
        """The part of a relay's prelude that changes this terminal, counted as written: a resume finds the modes
        already in force and writes nothing (``ESC [ ? 1049 h`` again would save the cursor again and clear the
        alternate screen in some terminals). Sequences this class does not track are written as they are."""
        data = prelude.encode()
        out = bytearray()
        position = 0
        for match in _SEQUENCE.finditer(data):
            out += data[position : match.start()]
            position = match.end()
            params, action, single = match.group(1), match.group(2), match.group(3)
            if single is not None:
                if single == b"c" or (single == b"=") != self._keypad:
                    out += match.group(0)
            else:
                wanted = action == b"h"
                changes = [p for p in params.split(b";") if not self._already(p, wanted)]
                if changes:
                    out += b"\x1b[?" + b";".join(changes) + action
            self._apply(match)
        out += data[position:]
        return bytes(out)

    def restore(self) -> bytes:
        """What to write on detach or exit to hand the terminal back: the modes switched on turned off, the main
        screen, the cursor shown and plain colours (detaching mid-line can leave any of them set)."""
        out = [f"\x1b[?{mode}l" for mode in _OFF_ON_EXIT if self.is_on(mode)]
        if self._keypad:
            out.append("\x1b>")
        if self._alt_screen is not None:
            out.append(f"\x1b[?{self._alt_screen}l")
        out.append("\x1b[0m\x1b[?25h")
        return "".join(out).encode()

    def _already(self, param: bytes, on: bool) -> bool:
        return param.isdigit() and int(param) in _KNOWN and self.is_on(int(param)) == on

    def _apply(self, match: re.Match[bytes]) -> None:
        params, action, single = match.group(1), match.group(2), match.group(3)
        if single == b"c":
            self._private.clear()
            self._alt_screen = None
            self._keypad = False
        elif single is not None:
            self._keypad = single == b"="
        else:
            for param in params.split(b";"):
                if not param.isdigit():
                    continue
                mode, on = int(param), action == b"h"
                if mode in _ALT_SCREENS:
                    if not on or self._alt_screen is None:
                        self._alt_screen = mode if on else None
                else:
                    self._private[mode] = on
