"""What a piece of text shows: invisible characters and bidi controls, from the Unicode data (stdlib only).

Names are shown in lists, pages, the admin and command output; a name must show
something and must not reorder the text around it. The rules use the Unicode
Character Database through :mod:`unicodedata` (general categories, bidirectional
classes) and the two properties it does not expose, copied from Unicode's PropList.txt.
"""

import unicodedata

# Bidi_Control (PropList.txt): the explicit embeddings, overrides and isolates, by their
# bidirectional class, and the three implicit marks, by name.
BIDI_EXPLICIT_CLASSES = frozenset({"LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI"})
BIDI_MARKS = frozenset(
    unicodedata.lookup(name) for name in ("LEFT-TO-RIGHT MARK", "RIGHT-TO-LEFT MARK", "ARABIC LETTER MARK")
)

# Default_Ignorable_Code_Point beyond the format characters (category Cf): Variation_Selector and
# Other_Default_Ignorable_Code_Point (PropList.txt), such as the Hangul fillers, which are letters
# (Lo) that render as nothing. Inclusive ranges of code points.
_IGNORABLE_RANGES = (
    (0x034F, 0x034F),  # COMBINING GRAPHEME JOINER
    (0x115F, 0x1160),  # HANGUL CHOSEONG / JUNGSEONG FILLER
    (0x17B4, 0x17B5),  # KHMER VOWEL INHERENT AQ / AA
    (0x180B, 0x180F),  # MONGOLIAN FREE VARIATION SELECTORS, VOWEL SEPARATOR
    (0x2065, 0x2065),
    (0x3164, 0x3164),  # HANGUL FILLER
    (0xFE00, 0xFE0F),  # VARIATION SELECTOR-1..16
    (0xFFA0, 0xFFA0),  # HALFWIDTH HANGUL FILLER
    (0xFFF0, 0xFFF8),
    (0xE0000, 0xE0FFF),  # tags, VARIATION SELECTOR-17..256, reserved
)


# Characters that draw nothing although they are neither default-ignorable nor spaces: Unicode
# lists them as "invisible but not default ignorable" (the Hangul fillers above are also
# default-ignorable). Each renders as a blank cell in common fonts.
BLANK_GLYPHS = frozenset(
    unicodedata.lookup(name)
    for name in (
        "BRAILLE PATTERN BLANK",  # U+2800, So
        "HANGUL FILLER",  # U+3164
        "HANGUL CHOSEONG FILLER",  # U+115F
        "HANGUL JUNGSEONG FILLER",  # U+1160
        "HALFWIDTH HANGUL FILLER",  # U+FFA0
        "MUSICAL SYMBOL NULL NOTEHEAD",  # U+1D159
    )
)


def is_bidi_control(char: str) -> bool:
    """True for a character with the Unicode property Bidi_Control (U+202E RIGHT-TO-LEFT OVERRIDE, U+200F...)."""
    return unicodedata.bidirectional(char) in BIDI_EXPLICIT_CLASSES or char in BIDI_MARKS


def is_invisible(char: str) -> bool:
    """True for a default-ignorable character: a format character (Cf, such as U+200B ZERO WIDTH SPACE)
    or one of PropList.txt's other default ignorables; these render as nothing."""
    if unicodedata.category(char) == "Cf":
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _IGNORABLE_RANGES)


def is_visible(char: str) -> bool:
    """True for a character that draws something: a letter, number, punctuation or symbol
    (categories L, N, P, S) that is not default-ignorable. Spaces, controls, format characters
    and combining marks alone show nothing, nor do the blank glyphs of :data:`BLANK_GLYPHS`."""
    return unicodedata.category(char)[0] in "LNPS" and not is_invisible(char) and char not in BLANK_GLYPHS


def has_visible(text: str) -> bool:
    """True when ``text`` shows at least one character (:func:`is_visible`)."""
    return VISIBLE in classes(text)


def has_control(text: str) -> bool:
    """True when ``text`` holds a control character (category Cc), a lone surrogate (Cs) or a line
    break (:func:`is_line_break`): what cannot be shown on one line."""
    return CONTROL in classes(text)


# Bidirectional classes that can reorder left-to-right text next to them: right-to-left letters,
# Arabic numbers, and the explicit controls (UAX #9).
_REORDERING_CLASSES = frozenset({"R", "AL", "AN"}) | BIDI_EXPLICIT_CLASSES


def needs_isolation(text: str) -> bool:
    """True when ``text`` shown inside left-to-right text could reorder it: it holds right-to-left
    letters, Arabic numbers or bidi controls. Such text is shown isolated (``<bdi>``, :func:`isolated`)."""
    return any(unicodedata.bidirectional(char) in _REORDERING_CLASSES or char in BIDI_MARKS for char in text)


def first_bidi_control(text: str) -> str | None:
    """The first bidi control in ``text`` (:func:`is_bidi_control`), or None."""
    position = classes(text).find(BIDI)
    return text[position] if position >= 0 else None


def is_line_break(char: str) -> bool:
    """True for a character that breaks a line: the line and paragraph separators (categories Zl, Zp:
    U+2028, U+2029) and the control characters Unicode treats as line ends (UAX #14 BK, CR, LF, NL)."""
    return unicodedata.category(char) in ("Zl", "Zp") or char in "\n\r\x0b\x0c\x85"


# Letters of other scripts that look like the Latin letters of a key's prefix or its hex digits
# (Unicode's confusables.txt maps each of these to the Latin letter given).
_LATIN_LOOKALIKES = str.maketrans(
    {
        "\u0430": "a",  # CYRILLIC SMALL LETTER A
        "\u0441": "c",  # CYRILLIC SMALL LETTER ES
        "\u0501": "d",  # CYRILLIC SMALL LETTER KOMI DE
        "\u0435": "e",  # CYRILLIC SMALL LETTER IE
        "\u0456": "i",  # CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I
        "\u043e": "o",  # CYRILLIC SMALL LETTER O
        "\u0440": "p",  # CYRILLIC SMALL LETTER ER
        "\u0475": "v",  # CYRILLIC SMALL LETTER IZHITSA
        "\u03b1": "a",  # GREEK SMALL LETTER ALPHA
        "\u03b9": "i",  # GREEK SMALL LETTER IOTA
        "\u03bf": "o",  # GREEK SMALL LETTER OMICRON
        "\u03c1": "p",  # GREEK SMALL LETTER RHO
        "\u03bd": "v",  # GREEK SMALL LETTER NU
    }
)


def skeleton(text: str) -> str:
    """``text`` reduced to what a key pattern should match, however it is disguised.

    NFKC-normalised (fullwidth forms), case-folded (``ОМІ`` is ``омі``), well-known Cyrillic
    and Greek lookalikes mapped to Latin, and every character that draws nothing of its own
    removed: default-ignorables, combining marks (Mn), separators (Z*: spaces, U+2028,
    U+2029), controls (Cc) and :data:`BLANK_GLYPHS`. Only for matching; never shown.
    """
    return unicodedata.normalize("NFKC", text).casefold().translate(_LATIN_LOOKALIKES).translate(_DRAWN)


_DRAWS_NOTHING = frozenset({"Mn", "Me", "Zs", "Zl", "Zp", "Cc"})


class _CharacterTable(dict):
    """A ``str.translate`` table filled on first use of each code point: ``rule(char)`` gives what the
    character becomes (a string, or None to remove it). The per-character Unicode look-ups then run
    once per distinct character, not once per character of every text: names, document ids and
    uids are checked on every write and a million times in an import. At most :attr:`LIMIT`
    entries are kept, so hostile input cannot grow it without bound."""

    LIMIT = 4096

    def __init__(self, rule):
        super().__init__()
        self.rule = rule

    def __missing__(self, code: int) -> str | None:
        value = self.rule(chr(code))
        if len(self) < self.LIMIT:
            self[code] = value
        return value


def _drawn(char: str) -> str | None:
    if is_invisible(char) or char in BLANK_GLYPHS or unicodedata.category(char) in _DRAWS_NOTHING:
        return None
    return char


_DRAWN = _CharacterTable(_drawn)

# The classes :func:`classes` gives each character.
CONTROL, BIDI, VISIBLE, OTHER = "c", "b", "v", "."


def _class_of(char: str) -> str:
    if unicodedata.category(char) in ("Cc", "Cs") or is_line_break(char):
        return CONTROL
    if is_bidi_control(char):
        return BIDI
    return VISIBLE if is_visible(char) else OTHER


_CLASSES = _CharacterTable(_class_of)


def classes(text: str) -> str:
    """``text`` with each character replaced by its class, position for position: :data:`CONTROL`
    (Cc, Cs, a line break), :data:`BIDI` (:func:`is_bidi_control`), :data:`VISIBLE`
    (:func:`is_visible`) or :data:`OTHER` (spaces, marks, invisible characters)."""
    return text.translate(_CLASSES)


def code_point(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: a character named for a message."""
    return f"U+{ord(char):04X} {unicodedata.name(char, '')}".rstrip()


def describe(text: str) -> str:
    """The code points of ``text``, for showing a value that renders as nothing: ``U+200B ZERO WIDTH SPACE, ...``."""
    return ", ".join(code_point(char) for char in text)


def isolated(text: str) -> str:
    """``text`` between U+2068 FIRST STRONG ISOLATE and U+2069 POP DIRECTIONAL ISOLATE: the plain-text
    ``<bdi>``, so a bidi control inside cannot reorder what follows (Unicode UAX #9, isolates)."""
    return f"\u2068{text}\u2069"
