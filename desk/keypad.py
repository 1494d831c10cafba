"""Keys a phone caller presses on the keypad, gathered into one entry. Plain Python.

Digits collect until `#` ends the entry; `*` starts over; keys other than digits are
ignored, and at most `MAX_KEYS` are kept (the longest E.164 number). The caller of
`press()` ends an entry on a pause too (`take()`, see tools/keypad.py). What the entry
means (a ZIP code or a phone number) and its validation are the desk's, the same as for
speech. The digits are never logged: only how many keys an entry had.
"""

from __future__ import annotations

DIGITS = frozenset("0123456789")
SUBMIT = "#"
CLEAR = "*"
MAX_KEYS = 15


class KeypadBuffer:
    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._keys: list[str] = []
        self._max_keys = max_keys

    def press(self, key: str) -> str | None:
        """Take one key; the finished entry when it was `#` and digits were typed, else None."""
        if key == SUBMIT:
            return self.take()
        if key == CLEAR:
            self._keys.clear()
        elif key in DIGITS and len(self._keys) < self._max_keys:
            self._keys.append(key)
        return None

    def take(self) -> str | None:
        """The digits typed so far (None if none), and a fresh start."""
        entry = "".join(self._keys)
        self._keys.clear()
        return entry or None

    @property
    def pending(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:  # never the digits themselves
        return f"KeypadBuffer(keys={len(self._keys)})"
