"""Key format, display prefix and hashing."""

import hashlib
import re

import pytest

from apikeys import crypto


def test_hex_keys_have_omis_format_and_128_random_bits():
    keys = {crypto.generate_key("hex").plaintext for _ in range(1000)}
    assert len(keys) == 1000
    assert all(re.fullmatch(r"omi_dev_[0-9a-f]{32}", key) for key in keys)
    assert all(crypto.is_well_formed(key) for key in keys)


def test_prefix_and_hash_are_computed_together():
    generated = crypto.generate_key()
    secret = generated.plaintext[8:]
    assert generated.display_prefix == f"omi_dev_{secret[:4]}...{secret[-4:]}"
    # Omi's scheme: the SHA-256 of the secret, without "omi_dev_".
    assert generated.hashed == hashlib.sha256(secret.encode()).hexdigest()
    assert generated.hashed == crypto.hash_key(generated.plaintext)


@pytest.mark.parametrize("key_format", ["checksum", "hex"])
def test_the_display_prefix_reveals_a_quarter_of_the_secret_at_most(key_format):
    generated = crypto.generate_key(key_format)
    shown = generated.display_prefix.removeprefix("omi_dev_").replace("...", "")
    assert len(shown) == 8
    assert generated.plaintext[8:] not in generated.display_prefix


def test_an_unknown_key_format_is_refused():
    with pytest.raises(ValueError, match=r"^unknown key format 'base64'; one of checksum, hex$"):
        crypto.generate_key("base64")


def percent_encoded(text: str) -> str:
    """Every byte of ``text`` as %XX, as a URL's query sometimes carries a pasted key."""
    return "".join(f"%{byte:02X}" for byte in text.encode())


def test_a_key_percent_encoded_up_to_twice_is_found_and_deeper_is_not_followed():
    for key in (crypto.generate_key().plaintext, crypto.generate_key("hex").plaintext):
        once = percent_encoded(key)
        twice = percent_encoded(once)
        assert crypto.contains_raw_key(f"?q={once}") and crypto.contains_raw_key(f"?q={twice}")
        # PERCENT_DECODINGS (2): a third encoding is left as it is, key or not.
        assert not crypto.contains_raw_key(f"?q={percent_encoded(twice)}")
    assert not crypto.contains_raw_key(percent_encoded(percent_encoded(percent_encoded("no key here"))))


def test_well_formed_rejects_near_misses():
    assert not crypto.is_well_formed("omi_dev_" + "A" * 32)
    assert not crypto.is_well_formed("omi_dev_" + "a" * 31)
    assert not crypto.is_well_formed("omi_dev_" + "a" * 33)
    assert not crypto.is_well_formed("omi_mcp_" + "a" * 32)
    # "$" in a regular expression also matches before a final newline: a key with one is not a key.
    assert not crypto.is_well_formed("omi_dev_" + "a" * 32 + "\n")
    assert not crypto.is_well_formed_service_token("omi_svc_" + "a" * 32 + "\n")
    assert crypto.is_well_formed("omi_dev_" + "a" * 32) and crypto.is_well_formed_service_token("omi_svc_" + "a" * 32)
    # What is not text is no key, not an error: bytes of a key, None, a number.
    for value in (("omi_dev_" + "a" * 32).encode(), None, 12345):
        assert crypto.is_well_formed(value) is False


def test_raw_keys_are_found_inside_text_in_any_case():
    assert crypto.contains_raw_key("prod: omi_dev_" + "ab" * 16 + " (old)")
    assert crypto.contains_raw_key("OMI_MCP_" + "AB" * 16)
    assert not crypto.contains_raw_key("omi_dev_abcd...wxyz")
    assert not crypto.contains_raw_key("omi_dev_" + "g" * 32)


def test_the_hash_is_omis_hash_of_the_secret_part():
    # A key and its hashed_key as Omi's backend generates them: sha256(secret_part).
    secret = "0123456789abcdef0123456789abcdef"
    assert crypto.hash_key("omi_dev_" + secret) == hashlib.sha256(secret.encode()).hexdigest()
    assert crypto.hash_key("omi_dev_" + secret) != hashlib.sha256(f"omi_dev_{secret}".encode()).hexdigest()


def test_a_key_has_two_candidate_hashes_omis_and_the_tagged_whole_key_hash():
    key = crypto.generate_key().plaintext
    current, legacy = crypto.candidate_hashes(key)
    assert current == crypto.hash_key(key)
    assert legacy == "fullkey:" + hashlib.sha256(key.encode()).hexdigest()
    assert crypto.is_stored_hash(current)
    assert not crypto.is_stored_hash(legacy)


def test_stored_hash_shape_is_64_lowercase_hex():
    assert crypto.is_stored_hash("a" * 64)
    assert not crypto.is_stored_hash("A" * 64)
    assert not crypto.is_stored_hash("a" * 63)
    assert not crypto.is_stored_hash("a" * 64 + "\n")
    assert not crypto.is_stored_hash(None)


def test_a_key_run_into_more_hex_digits_is_still_a_key_in_the_text():
    """Pasted with a stray digit after it, the key is still all there, and must not be stored in a name."""
    key = "omi_dev_" + "0123456789abcdef" * 2
    assert crypto.contains_raw_key(f"prod {key}7")
    assert crypto.contains_raw_key(f"{key}0123")
    assert crypto.contains_raw_key(f"{key.replace('omi_dev_', 'OMI_MCP_')}f")
    assert not crypto.contains_raw_key("prod " + key[:-1])  # 31 hex digits: not a key
