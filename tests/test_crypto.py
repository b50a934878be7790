"""Key format, display prefix and hashing."""

import hashlib
import re

from apikeys import crypto


def test_keys_have_omis_format_and_128_random_bits():
    keys = {crypto.generate_key().plaintext for _ in range(1000)}
    assert len(keys) == 1000
    assert all(re.fullmatch(r"omi_dev_[0-9a-f]{32}", key) for key in keys)
    assert all(crypto.is_well_formed(key) for key in keys)


def test_prefix_and_hash_are_computed_together():
    generated = crypto.generate_key()
    secret = generated.plaintext[8:]
    assert generated.display_prefix == f"omi_dev_{secret[:4]}...{secret[-4:]}"
    assert generated.hashed == hashlib.sha256(generated.plaintext.encode()).hexdigest()
    assert generated.hashed == crypto.hash_key(generated.plaintext)


def test_the_display_prefix_reveals_a_quarter_of_the_secret_at_most():
    generated = crypto.generate_key()
    shown = generated.display_prefix.removeprefix("omi_dev_").replace("...", "")
    assert len(shown) == 8
    assert generated.plaintext[8:] not in generated.display_prefix


def test_well_formed_rejects_near_misses():
    assert not crypto.is_well_formed("omi_dev_" + "A" * 32)
    assert not crypto.is_well_formed("omi_dev_" + "a" * 31)
    assert not crypto.is_well_formed("omi_dev_" + "a" * 33)
    assert not crypto.is_well_formed("omi_mcp_" + "a" * 32)


def test_raw_keys_are_found_inside_text_in_any_case():
    assert crypto.contains_raw_key("prod: omi_dev_" + "ab" * 16 + " (old)")
    assert crypto.contains_raw_key("OMI_MCP_" + "AB" * 16)
    assert not crypto.contains_raw_key("omi_dev_abcd...wxyz")
    assert not crypto.contains_raw_key("omi_dev_" + "g" * 32)
