"""pixel_core.user_data: Meta's normalisation rules, hashing, and refusals that never echo a value.

"Meta's page" below is Customer Information Parameters,
https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters
(the copy read was updated Jan 9, 2026).
"""

import datetime
import hashlib

import pytest

from pixel_core import user_data
from pixel_core.user_data import (
    HASHED_KEYS,
    MATCH_KEYS,
    MAX_VALUES_PER_KEY,
    UNHASHED_KEYS,
    InvalidUserData,
    hashed,
    normalise,
    prepare,
)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# (key, input, normalised value, where the example comes from)
META_EXAMPLES = [
    # Meta's page, em: Input John_Smith@gmail.com, Normalized format john_smith@gmail.com
    ("em", "John_Smith@gmail.com", "john_smith@gmail.com"),
    # Meta's page, em: "Trim any leading and trailing spaces. Convert all characters to lowercase."
    ("em", "  John_Smith@GMAIL.com ", "john_smith@gmail.com"),
    # Meta's page, ph: Input "US phone number (650)555-1212", Normalized format 16505551212; the
    # country code (1) cannot be inferred, so it is in the input here.
    ("ph", "+1 (650) 555-1212", "16505551212"),
    # Meta's page, ph: "Remove symbols, letters, and any leading zeros"
    ("ph", "001 650.555.1212", "16505551212"),
    # Meta's Business Help "How to format a customer list": +44 844 412 4653
    ("ph", "+44 844 412 4653", "448444124653"),
    # Meta's page, fn: Mary -> mary; 정 -> "정"; Valéry -> valéry
    ("fn", "Mary", "mary"),
    ("fn", "정", "정"),
    ("fn", "Valéry", "valéry"),
    ("fn", "Vale\u0301ry", "valéry"),  # the same name, typed with a combining accent (NFC)
    # Meta's page, ln: "See First Name (fn) for examples"; "Lowercase only with no punctuation"
    ("ln", "Valéry", "valéry"),
    ("ln", "O'Brien-Smith.", "obriensmith"),
    # Meta's page, db: Input 2/16/1997, Normalized format 19970216
    ("db", "2/16/1997", "19970216"),
    ("db", "19970216", "19970216"),
    ("db", "1997-02-16", "19970216"),
    # Meta's page, ge: "f for female", "m for male"
    ("ge", "f", "f"),
    ("ge", "M", "m"),
    ("ge", "Female", "f"),
    ("ge", "male", "m"),
    # Meta's page, ct examples: paris, london, newyork ("no punctuation, no special characters,
    # and no spaces")
    ("ct", "Paris", "paris"),
    ("ct", "London", "london"),
    ("ct", "New York", "newyork"),
    ("ct", "St. Louis", "stlouis"),
    # Meta's page, st examples: az, ca ("2-character ANSI abbreviation code in lowercase")
    ("st", "AZ", "az"),
    ("st", "ca", "ca"),
    ("st", "California", "ca"),
    # Meta's page, st: outside the U.S. "lowercase with no punctuation, no special characters,
    # and no spaces"
    ("st", "Île-de-France", "îledefrance"),
    # Meta's page, zp examples: U.S. 94035, Australia 1987, France 75018, UK m11ae; "Use only the
    # first 5 digits for U.S. zip codes"
    ("zp", "94035", "94035"),
    ("zp", "94035-1234", "94035"),
    ("zp", "1987", "1987"),
    ("zp", "75018", "75018"),
    ("zp", "M1 1AE", "m11ae"),
    # Meta's page, country: Input United States, Normalized format us
    ("country", "United States", "us"),
    ("country", "US", "us"),
    ("country", "fr", "fr"),
    # Meta's page, external_id: "in the same format as when sent via" other channels: trimmed only
    ("external_id", " Loyalty-ABC123 ", "Loyalty-ABC123"),
]


@pytest.mark.parametrize(("key", "given", "normalised"), META_EXAMPLES)
def test_meta_examples_normalise_and_hash(key, given, normalised):
    assert normalise(key, given) == normalised
    assert hashed(key, given) == sha256(normalised)


# The digests Meta's page prints next to its examples.
@pytest.mark.parametrize(
    ("key", "given", "digest"),
    [
        ("em", "John_Smith@gmail.com", "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"),
        ("ph", "+1 (650)555-1212", "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"),
        ("fn", "Mary", "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"),
        ("fn", "정", "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"),
        ("fn", "Valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"),
        ("db", "2/16/1997", "01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c"),
        ("country", "United States", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"),
    ],
)
def test_meta_printed_digests(key, given, digest):
    assert hashed(key, given) == digest


# What facebook-business 26.0.3 (Normalize.normalize_field, Python 3.13) produced for these inputs.
@pytest.mark.parametrize(
    ("key", "given", "digest"),
    [
        ("em", " John_Smith@Gmail.com ", "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"),
        ("ph", "+44 844 412 4653", "dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383"),
        ("ph", "0044 844 412 4653", "dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383"),
        ("ln", "Valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"),
        ("ct", "Menlo Park", "0007a3d64c01e23d5075203c5977c14e4f7e01a3fc570686fcc50b5e1dd42685"),
        ("st", "AZ", "9c0ada37bf74aeefae949fdfc90db0cf6eaf90192eff67d65887771f0585e055"),
        ("zp", "94035-1234", "1794327a4d443904421f5ca1f3d72d0a62ba2f0770d80755ec2220fc0efb052e"),
        ("zp", "M1 1AE", "1dc694c2070e697769fb959b50671d76cafd430d8ca191fbdd0affcaea344ac5"),
        ("country", "US", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"),
        ("ge", "f", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"),
        ("db", "19970216", "01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c"),
    ],
)
def test_agrees_with_metas_sdk(key, given, digest):
    assert hashed(key, given) == digest


def test_match_keys_in_metas_order():
    assert MATCH_KEYS[:11] == ("em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id")
    assert MATCH_KEYS[11:15] == ("client_ip_address", "client_user_agent", "fbc", "fbp")
    assert len(set(MATCH_KEYS)) == len(MATCH_KEYS)
    assert set(MATCH_KEYS) == HASHED_KEYS | UNHASHED_KEYS
    assert not HASHED_KEYS & UNHASHED_KEYS


DIGEST = sha256("john_smith@gmail.com")


@pytest.mark.parametrize("key", sorted(HASHED_KEYS))
def test_a_digest_passes_through_lowercased(key):
    assert hashed(key, DIGEST) == DIGEST
    assert hashed(key, DIGEST.upper()) == DIGEST
    assert hashed(key, f"  {DIGEST.upper()} ") == DIGEST
    assert normalise(key, DIGEST.upper()) == DIGEST
    assert prepare({key: DIGEST.upper()}) == {key: [DIGEST]}


def test_no_double_hashing_through_prepare():
    once = prepare({"em": "John_Smith@gmail.com"})
    assert prepare(once) == once  # lists of digests go through again unchanged


def test_lists_are_hashed_and_deduplicated_in_order():
    prepared = prepare({"em": ["b@example.com", "A@example.com", " a@example.com"], "ph": "+1 650 555 1212"})
    assert prepared == {
        "em": [sha256("b@example.com"), sha256("a@example.com")],
        "ph": [sha256("16505551212")],
    }
    assert prepare({"fn": ("Mary",)}) == {"fn": [sha256("mary")]}


def test_external_id_is_hashed_not_lowercased():
    assert prepare({"external_id": ["ABC", "abc"]}) == {"external_id": [sha256("ABC"), sha256("abc")]}


UNHASHED_VALUES = {
    # Meta's page examples
    "client_ip_address": "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "client_user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.4280.141 Safari/537.36",
    "fbc": "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890",
    "fbp": "fb.1.1596403881668.1116446470",
    "subscription_id": "sub_123",
    "fb_login_id": 1234567890,
    "lead_id": "987654321",
    "anon_id": "install-1",
    "madid": "AECE52E7-03EE-455A-B3C4-E57283966239",
    "page_id": "1122334455",
    "page_scoped_user_id": "5566778899",
    "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM-GABDLOPaOdRMv-_zfUQ2a",
    "ig_account_id": "17841400000000000",
    "ig_sid": "1234",
}


def test_unhashed_keys_pass_unchanged():
    assert set(UNHASHED_VALUES) == UNHASHED_KEYS
    assert prepare(UNHASHED_VALUES) == UNHASHED_VALUES
    assert prepare({"client_ip_address": "168.212.226.204"}) == {"client_ip_address": "168.212.226.204"}


def test_prepare_mixes_both_kinds():
    prepared = prepare({"em": "a@example.com", "fbp": UNHASHED_VALUES["fbp"]})
    assert prepared == {"em": [sha256("a@example.com")], "fbp": UNHASHED_VALUES["fbp"]}


SECRET = "s3cr3t-Personal-Value"


def refused(data, *, key):
    """prepare refuses `data`, naming `key` and never SECRET."""
    with pytest.raises(InvalidUserData) as caught:
        prepare(data)
    message = str(caught.value)
    assert SECRET not in message
    assert SECRET.lower() not in message
    assert caught.value.key == key
    assert key in message
    return message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("em", f"{SECRET}"),  # no @
        ("em", f"{SECRET}@nodot"),
        ("em", f"{SECRET} x@example.com"),
        ("ph", f"{SECRET}"),  # letters
        ("ph", "+1 555"),  # too short
        ("ph", "1234567890123456"),  # longer than E.164
        ("ph", "+000000"),
        ("fn", "?!."),
        ("ge", "unknown"),
        ("ge", "other"),
        ("db", "19971302"),  # month 13
        ("db", "19970230"),  # 30 February
        ("db", "16/02/1997"),  # day first is not guessed at
        ("db", "18991231"),  # before 1900
        ("db", f"{datetime.date.today().year + 1}0101"),  # next year
        ("db", SECRET),
        ("ct", "12345"),
        ("st", "--"),
        ("zp", "750#18"),
        ("country", "xx"),
        ("country", "France"),  # only Meta's own example name is mapped
        ("country", SECRET),
    ],
)
def test_invalid_hashed_values(key, value):
    message = refused({key: value}, key=key)
    assert value not in message
    with pytest.raises(InvalidUserData):
        hashed(key, value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("client_ip_address", SECRET),
        ("client_ip_address", "999.1.1.1"),
        ("client_ip_address", " 1.2.3.4"),
        ("client_ip_address", "fe80::1%eth0"),
        ("fbc", SECRET),
        ("fbp", "fb.1.abc.123"),
        ("fb_login_id", f"{SECRET}"),
        ("lead_id", -1),
        ("lead_id", True),
        ("client_user_agent", 42),
        ("client_user_agent", ["Mozilla/5.0"]),
        ("client_user_agent", "x" * (user_data.MAX_USER_AGENT_LENGTH + 1)),
        ("subscription_id", "x" * (user_data.MAX_ID_LENGTH + 1)),
        ("subscription_id", f"{SECRET}\x00"),
        ("anon_id", ""),
        ("anon_id", "   "),
    ],
)
def test_invalid_unhashed_values(key, value):
    refused({key: value}, key=key)


def test_unknown_keys_are_named():
    message = refused({"email": SECRET}, key="email")
    assert "email" in message
    message = refused({"em": "a@example.com", "f5first": SECRET}, key="f5first")


def test_unknown_keys_are_cut_short_and_escaped():
    with pytest.raises(InvalidUserData) as caught:
        prepare({"k" * 1000 + SECRET: "x"})
    assert SECRET not in str(caught.value)
    assert len(str(caught.value)) < 200
    with pytest.raises(InvalidUserData) as caught:
        prepare({"bad\nkey\x1b[31m": "x"})
    assert "\n" not in str(caught.value)
    assert "\x1b" not in str(caught.value)
    with pytest.raises(InvalidUserData):
        prepare({1: "x"})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        4.2,
        True,
        {"em": SECRET},  # nested object
        [{"nested": SECRET}],
        [["a@example.com"]],
        [SECRET + "@example.com", None],
        b"a@example.com",
    ],
)
def test_wrong_types(value):
    refused({"em": value}, key="em")


@pytest.mark.parametrize("value", ["", "   ", "\t\n", []])
def test_empty_values(value):
    refused({"em": value}, key="em")


def test_too_many_values():
    refused({"em": [f"{n}{SECRET}@example.com" for n in range(MAX_VALUES_PER_KEY + 1)]}, key="em")
    assert len(prepare({"em": [f"{n}@example.com" for n in range(MAX_VALUES_PER_KEY)]})["em"]) == 10  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        f"{SECRET}\x00@example.com",
        f"{SECRET}\x1b[2J@example.com",
        f"{SECRET}\ud800@example.com",  # a lone surrogate: not UTF-8
        SECRET * 50_000 + "@example.com",  # about 1 MB
        " " * 1_000_000 + "a@example.com",
    ],
)
def test_hostile_values(value):
    message = refused({"em": value}, key="em")
    assert len(message) < 200


def test_hostile_value_in_every_key():
    megabyte = SECRET * 50_000
    for key in MATCH_KEYS:
        refused({key: megabyte}, key=key)
        refused({key: {"nested": SECRET}}, key=key)


def test_user_data_must_be_a_mapping():
    with pytest.raises(InvalidUserData):
        prepare([("em", "a@example.com")])  # type: ignore[arg-type]


def test_normalise_only_takes_hashed_keys():
    with pytest.raises(InvalidUserData, match="client_ip_address"):
        normalise("client_ip_address", "1.2.3.4")
    with pytest.raises(InvalidUserData, match="emails"):
        hashed("emails", "a@example.com")
    with pytest.raises(InvalidUserData):
        normalise("em", 42)  # type: ignore[arg-type]


def test_invalid_user_data_is_a_value_error():
    assert issubclass(InvalidUserData, ValueError)
    error = InvalidUserData("em", "expected an email address")
    assert error.key == "em"
    assert str(error) == "user_data.em: expected an email address"
