"""The Omi reader's pieces: timestamps in every export form, document ids, names, and how files are read."""

import datetime
import gzip
import io
import uuid

import pytest

from apikeys.importers import omi

UTC = datetime.UTC


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("2025-03-04T05:06:07Z", datetime.datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("2025-03-04T05:06:07.123456+02:00", datetime.datetime(2025, 3, 4, 3, 6, 7, 123456, tzinfo=UTC)),
        ("2025-03-04T05:06:07", datetime.datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)),
        (
            {"_seconds": 1700000000, "_nanoseconds": 999999999},
            datetime.datetime(2023, 11, 14, 22, 13, 20, 999999, tzinfo=UTC),
        ),
        ({"seconds": "1700000000", "nanos": 1000}, datetime.datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=UTC)),
        ({"seconds": 1700000000}, datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ({"__datatype__": "timestamp", "value": {"_seconds": 0, "_nanoseconds": 0}}, omi.EPOCH),
        ({"__time__": "1970-01-01T00:00:00.000Z"}, omi.EPOCH),
    ],
)
def test_timestamps_in_every_form_export_tools_write(value, expected):
    assert omi.parse_timestamp(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "",
        1700000000,
        True,
        {"_seconds": True},
        {"seconds": 1.5},
        {"seconds": 1, "nanos": 1_000_000_000},
        {"seconds": 10**15},
        {"x": 1},
        [],
    ],
)
def test_anything_else_is_not_a_timestamp(value):
    with pytest.raises(ValueError):
        omi.parse_timestamp(value)


def test_uuid_document_ids_stay_and_other_ids_map_to_a_stable_uuid5():
    canonical = str(uuid.uuid4())
    assert omi.key_id_for(canonical) == uuid.UUID(canonical)
    assert omi.key_id_for("aBcD1234efGH5678ijKL") == uuid.uuid5(omi.OMI_DOCUMENT_NAMESPACE, "aBcD1234efGH5678ijKL")
    assert omi.key_id_for("aBcD1234efGH5678ijKL") == omi.key_id_for("aBcD1234efGH5678ijKL")
    # A UUID in upper case is the same UUID: it stays the key's id, in its canonical spelling.
    assert omi.key_id_for(canonical.upper()) == uuid.UUID(canonical)
    # Other spellings uuid.UUID would accept are not how Firestore ids look: they map like any other id.
    for spelling in (canonical.replace("-", ""), "{" + canonical + "}", "urn:uuid:" + canonical):
        assert omi.key_id_for(spelling) == uuid.uuid5(omi.OMI_DOCUMENT_NAMESPACE, spelling)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("My key", ("My key", False)),
        ("  padded  ", ("padded", False)),
        ("", (omi.LEGACY_NAME, True)),
        (None, (omi.LEGACY_NAME, True)),
        (42, (omi.LEGACY_NAME, True)),
        ("prod omi_dev_" + "0f" * 16, (omi.LEGACY_NAME, True)),
        ("OMI_MCP_" + "AB" * 16, (omi.LEGACY_NAME, True)),
        ("two\nlines\tand tab", ("two lines and tab", True)),
        ("é" * 120, ("é" * 99 + "…", True)),
    ],
)
def test_names_are_repaired_as_omi_repairs_them_then_fit_omikeys_rules(value, expected):
    assert omi.repaired_name(value) == expected


def test_gzip_is_recognised_by_its_bytes_whatever_the_name(tmp_path):
    plain = b'{"id": "a", "data": {}}\n'
    (tmp_path / "export.json").write_bytes(gzip.compress(plain))
    lines, raw, size = omi.open_export(str(tmp_path / "export.json"))
    assert lines.read() == plain and size == (tmp_path / "export.json").stat().st_size
    raw.close()
    lines, raw, _ = omi.open_export("-", stdin=io.BytesIO(plain))
    assert lines.read() == plain


def test_lines_are_numbered_blank_ones_skipped_and_overlong_ones_refused_unread(monkeypatch):
    monkeypatch.setattr(omi, "MAX_LINE_BYTES", 10)
    stream = io.BytesIO(b"\xef\xbb\xbf{}\n\n   \n" + b"x" * 35 + b"\n{}\n\xff\n")
    assert list(omi.read_lines(stream)) == [
        (1, "{}\n", None),
        (4, None, "line_too_long"),
        (5, "{}\n", None),
        (6, None, "not_utf8"),
    ]
