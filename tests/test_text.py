"""apikeys.text: the memoised character tables agree with the per-character Unicode rules, for every code point."""

import sys
import unicodedata

import pytest

from apikeys import text

ALL_CODE_POINTS = range(sys.maxunicode + 1)


def reference_class(char: str) -> str:
    if unicodedata.category(char) in ("Cc", "Cs") or text.is_line_break(char):
        return text.CONTROL
    if text.is_bidi_control(char):
        return text.BIDI
    return text.VISIBLE if text.is_visible(char) else text.OTHER


def reference_skeleton(value: str) -> str:
    folded = unicodedata.normalize("NFKC", value).casefold().translate(text._LATIN_LOOKALIKES)
    drawn = [
        char
        for char in folded
        if not (
            text.is_invisible(char) or char in text.BLANK_GLYPHS or unicodedata.category(char) in text._DRAWS_NOTHING
        )
    ]
    return "".join(drawn)


def test_classes_agree_with_the_rules_for_every_code_point():
    everything = "".join(map(chr, ALL_CODE_POINTS))
    expected = "".join(reference_class(chr(code)) for code in ALL_CODE_POINTS)
    assert text.classes(everything) == expected


def test_skeleton_agrees_with_the_rules_for_every_code_point():
    for start in range(0, sys.maxunicode + 1, 4096):
        chunk = "".join(map(chr, range(start, min(start + 4096, sys.maxunicode + 1))))
        assert text.skeleton(chunk) == reference_skeleton(chunk), hex(start)


@pytest.mark.parametrize(
    "value",
    [
        "omi_dev_" + "ab" * 16,
        "ＯＭＩ＿ＤＥＶ＿" + "ab" * 16,
        "omi\u200b_dev_" + "a\u0301" * 32,
        "Tab\there",
        "\u202eevil",
    ],
)
def test_skeleton_of_disguised_text_is_the_plain_form(value):
    assert text.skeleton(value) == reference_skeleton(value)


def test_the_tables_stay_bounded_whatever_they_are_asked():
    text.classes("".join(map(chr, range(0x4E00, 0x4E00 + 3 * text._CharacterTable.LIMIT))))
    assert len(text._CLASSES) <= text._CharacterTable.LIMIT
    assert len(text._DRAWN) <= text._CharacterTable.LIMIT


def test_first_bidi_control_is_the_first_one():
    assert text.first_bidi_control("ab\u2066c\u202e") == "\u2066"
    assert text.first_bidi_control("abc") is None
    assert text.has_control("a\u2028b") and text.has_control("a\x7fb") and not text.has_control("a b")
