"""Which charge point identities GridLink takes: one character set, one normal form, for the
handshake (:func:`gateway.handshake.station_id`) and for the registry
(:func:`services.stations.add_station`, ``gridlink stations add``).

OCPP-J 1.6 §3.1.1 says only that the identity is the last path segment of the connection
URL, percent-encoded as RFC 3986 needs (its example ``RDAM 123`` holds a space). An id an
operator cannot read or type back is a trap: a DEL, a right-to-left override (``CP<U+202E>1``
shows as ``C1P``), a zero-width space or a trailing blank makes two stations that look the
same, and log lines and CLI output that lie. So an identity, once percent-decoded:

- is put in Unicode NFC (a charger that sends ``é`` decomposed reaches the station
  registered with ``é``; the registry stores the NFC form);
- is 1 to ``max_length`` characters (GRIDLINK_MAX_STATION_ID_LENGTH, 48);
- holds only letters and decimal digits of any script (with their combining marks), the
  punctuation of OCPP 2.0.1's identifierString and RFC 3986's unreserved and sub-delims
  characters (:data:`PUNCTUATION`), and single spaces between other characters.

Everything else is refused: control characters, DEL, format characters (bidi controls,
zero-width ones, the BOM), other spaces, ``/ \\ # ? % " < > [ ] { } ^ `` and backtick, symbols.
"""

from __future__ import annotations

import unicodedata

#: Punctuation an identity may hold: OCPP 2.0.1 identifierString (``*-_=:+|@.``) and
#: RFC 3986 unreserved and sub-delims characters (``~!$&'(),;``).
PUNCTUATION = frozenset("*-_=:+|@.~!$&'(),;")
_MARKS = ("Mn", "Mc")  # combining marks, after a letter or digit
ALLOWED = "letters, digits, single inner spaces and " + "".join(sorted(PUNCTUATION))


class InvalidStationId(ValueError):
    """An identity GridLink does not take; the message says why, in one line."""


def normalize(identity: str) -> str:
    """The identity in Unicode NFC."""
    return unicodedata.normalize("NFC", identity)


def problem(identity: str, max_length: int | None = None) -> str | None:
    """Why ``identity`` (already NFC) is not a charge point identity GridLink takes, or
    None."""
    if not identity:
        return "it is empty"
    if max_length is not None and len(identity) > max_length:
        return f"it is {len(identity)} characters long, at most {max_length} are allowed"
    if identity != normalize(identity):
        return "it is not in Unicode NFC"
    if identity[0] == " " or identity[-1] == " ":
        return "it starts or ends with a space"
    if "  " in identity:
        return "it holds two spaces in a row"
    previous = ""
    for position, char in enumerate(identity):
        category = unicodedata.category(char)
        if char in PUNCTUATION or char == " " or category.startswith("L") or category == "Nd":
            previous = char
            continue
        if category in _MARKS and position > 0 and previous not in PUNCTUATION | {" "}:
            continue
        return (f"{_describe(char)} at position {position + 1} is not allowed "
                f"(allowed: {ALLOWED})")
    return None


def check(identity: str, max_length: int | None = None) -> str:
    """The NFC form of ``identity``, or :class:`InvalidStationId` saying why not."""
    normal = normalize(identity)
    reason = problem(normal, max_length)
    if reason is not None:
        raise InvalidStationId(f"station id {identity!a}: {reason}")
    return normal


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    if not name and unicodedata.category(char) == "Cc":
        name = "a control character"
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")
