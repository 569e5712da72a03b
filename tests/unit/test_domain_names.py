"""Unit tests for pixel_core.domain_names: cleaning, validation and subdomain matching."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixel_core.domain_names import (
    MAX_RAW_LENGTH,
    InvalidDomainError,
    clean_domain,
    is_same_or_subdomain,
)

# Written independently of the module's regexes: the rules of the spec, spelled differently.
_SPEC_HOST = re.compile(
    r"(?=[a-z0-9.-]{1,253}\Z)"  # ASCII letters, digits, hyphens and dots, at most 253 chars
    r"(?:(?!-)[a-z0-9-]{1,63}(?<!-)\.)+"  # one or more labels before the TLD
    r"(?:[a-z]{1,63}|xn--[a-z0-9-]{0,58}[a-z0-9])"  # alphabetic or A-label TLD
)


def _meets_spec(host: str) -> bool:
    return _SPEC_HOST.fullmatch(host) is not None and not host.endswith(".localhost")


# "example" in fullwidth letters, which UTS46 maps to ASCII.
_FULLWIDTH_EXAMPLE = "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45"
_GENERIC_MESSAGE = r"^Invalid domain format$"

_LONGEST_VALID_HOST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
assert len(_LONGEST_VALID_HOST) == 253


CLEANING_CASES = [
    pytest.param("example.com", "example.com", id="bare-host"),
    pytest.param("https://WWW.Example.com/path?x=1", "www.example.com", id="spec-example-www-kept"),
    pytest.param("http://example.com", "example.com", id="http-scheme"),
    pytest.param("HTTPS://EXAMPLE.COM/", "example.com", id="uppercase-scheme-and-host"),
    pytest.param("ftp://files.example.org", "files.example.org", id="any-scheme"),
    pytest.param("wss://stream.example.net/socket", "stream.example.net", id="websocket-scheme"),
    pytest.param("//cdn.example.com/pixel.js", "cdn.example.com", id="protocol-relative"),
    pytest.param("example.com/path/to/page", "example.com", id="path-without-scheme"),
    pytest.param("example.com?utm_source=newsletter", "example.com", id="query-without-path"),
    pytest.param("example.com#pricing", "example.com", id="fragment-without-path"),
    pytest.param("example.com:8443", "example.com", id="port-without-scheme"),
    pytest.param("example.com:", "example.com", id="empty-port"),
    pytest.param("https://example.com:443/checkout?step=2#top", "example.com", id="full-url"),
    pytest.param("https://user:secret@example.com/", "example.com", id="credentials-with-password"),
    pytest.param("user@example.com", "example.com", id="user-without-scheme"),
    pytest.param("https://a@b:c@example.com:80/", "example.com", id="last-at-sign-ends-credentials"),
    pytest.param("example.com.", "example.com", id="trailing-dot"),
    pytest.param("https://example.com.:8080/", "example.com", id="trailing-dot-before-port"),
    pytest.param("  example.com  ", "example.com", id="surrounding-spaces"),
    pytest.param("\texample.com\r\n", "example.com", id="surrounding-tab-and-newline"),
    pytest.param("EXAMPLE.COM", "example.com", id="uppercase"),
    pytest.param("www.example.com", "www.example.com", id="www-kept"),
    pytest.param("shop.eu.example.co.uk", "shop.eu.example.co.uk", id="deep-subdomain"),
    pytest.param("my-shop.example.com", "my-shop.example.com", id="hyphen-inside-label"),
    pytest.param("123.example.com", "123.example.com", id="numeric-label-below-tld"),
    pytest.param("a.co", "a.co", id="shortest-labels"),
    pytest.param("bücher.de", "xn--bcher-kva.de", id="idna-umlaut"),
    pytest.param("https://Bücher.DE/katalog?q=1", "xn--bcher-kva.de", id="idna-inside-url"),
    pytest.param("straße.de", "xn--strae-oqa.de", id="idna-2008-keeps-sharp-s"),
    pytest.param("пример.рф", "xn--e1afmkfd.xn--p1ai", id="idna-cyrillic-tld"),
    pytest.param("例え.テスト", "xn--r8jz45g.xn--zckzah", id="idna-japanese"),
    pytest.param("example。com", "example.com", id="uts46-ideographic-full-stop"),
    pytest.param("bücher.de。", "xn--bcher-kva.de", id="uts46-trailing-ideographic-full-stop"),
    pytest.param(_FULLWIDTH_EXAMPLE + ".com", "example.com", id="uts46-fullwidth-letters"),
    pytest.param("xn--bcher-kva.de", "xn--bcher-kva.de", id="a-label-unchanged"),
    pytest.param("shop.xn--p1ai", "shop.xn--p1ai", id="a-label-tld-unchanged"),
    pytest.param(_LONGEST_VALID_HOST, _LONGEST_VALID_HOST, id="253-chars-and-63-char-labels"),
]


REJECTED_INPUTS = [
    pytest.param("", id="empty"),
    pytest.param("   \t\n", id="whitespace-only"),
    pytest.param("localhost", id="localhost"),
    pytest.param("LOCALHOST.", id="localhost-uppercase-trailing-dot"),
    pytest.param("http://localhost:3000/", id="localhost-url"),
    pytest.param("app.localhost", id="under-localhost-tld"),
    pytest.param("127.0.0.1", id="ipv4"),
    pytest.param("127.1", id="ipv4-short-form"),
    pytest.param("http://10.0.0.1:8080/x", id="ipv4-url"),
    pytest.param("[::1]", id="ipv6-bracketed"),
    pytest.param("http://[::1]:8080/", id="ipv6-url"),
    pytest.param("::1", id="ipv6-bare"),
    pytest.param("2001:db8::1", id="ipv6-bare-documentation"),
    pytest.param("*.example.com", id="wildcard"),
    pytest.param("example", id="single-label"),
    pytest.param("https://intranet/", id="single-label-url"),
    pytest.param("a" * 64 + ".com", id="label-of-64-chars"),
    pytest.param(_LONGEST_VALID_HOST + "d", id="total-of-254-chars"),
    pytest.param("-example.com", id="leading-hyphen"),
    pytest.param("example-.com", id="trailing-hyphen"),
    pytest.param("example.com-", id="trailing-hyphen-in-tld"),
    pytest.param("example.123", id="numeric-tld"),
    pytest.param("example.c0m", id="alphanumeric-tld"),
    pytest.param("exa_mple.com", id="underscore"),
    pytest.param("example..com", id="empty-label"),
    pytest.param(".example.com", id="leading-dot"),
    pytest.param("example.com..", id="two-trailing-dots"),
    pytest.param("exa\x07mple.com", id="bell-control-char"),
    pytest.param("\x1fexample.com", id="unit-separator-at-edge"),
    pytest.param("example.com\x85", id="c1-next-line-at-edge"),
    pytest.param("exa\x00mple.com", id="nul-inside"),
    pytest.param("example.com\x00", id="nul-at-end"),
    pytest.param("exa mple.com", id="space-inside"),
    pytest.param("exa\tmple.com", id="tab-inside"),
    pytest.param("exa\u00a0mple.com", id="no-break-space-inside"),
    pytest.param("example.com\\path", id="backslash"),
    pytest.param("https://evil.example\\@good.example/", id="backslash-credentials-trick"),
    pytest.param("example.com:abc", id="non-numeric-port"),
    pytest.param("example.com:99999", id="port-out-of-range"),
    pytest.param("https://", id="scheme-only"),
    pytest.param("//", id="protocol-relative-only"),
    pytest.param("https:///example.com", id="empty-authority"),
    pytest.param("user@", id="credentials-only"),
    pytest.param("exa%6dple.com", id="percent-encoding"),
    pytest.param("☃.com", id="idna-2008-disallowed-symbol"),
    pytest.param("bücher..de", id="idna-empty-label"),
    pytest.param("ü" * 64 + ".de", id="idna-label-too-long"),
    pytest.param("\ud800.com", id="lone-surrogate"),
    pytest.param("ex\N{FULLWIDTH SOLIDUS}ample.com", id="uts46-fullwidth-solidus"),
    pytest.param("x" * 100 * 1024, id="100-kb-string"),
    pytest.param("example.com/" + "a" * MAX_RAW_LENGTH, id="over-raw-limit-despite-clean-host"),
]


@pytest.mark.parametrize(("raw", "expected"), CLEANING_CASES)
def test_clean_domain_reduces_urls_and_decorated_names_to_the_bare_lowercase_host(
    raw: str, expected: str
) -> None:
    assert clean_domain(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), CLEANING_CASES)
def test_clean_domain_returns_a_fixed_point_for_every_table_input(raw: str, expected: str) -> None:
    # Given the cleaned form of a realistic input
    cleaned = clean_domain(raw)

    # When it is cleaned again
    cleaned_twice = clean_domain(cleaned)

    # Then nothing changes
    assert cleaned_twice == cleaned == expected


@pytest.mark.parametrize("raw", REJECTED_INPUTS)
def test_clean_domain_rejects_inputs_that_are_not_public_host_names(raw: str) -> None:
    with pytest.raises(InvalidDomainError, match=_GENERIC_MESSAGE):
        clean_domain(raw)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="none"),
        pytest.param(123, id="int"),
        pytest.param(["example.com"], id="list"),
        pytest.param(b"example.com", id="bytes"),
    ],
)
def test_clean_domain_rejects_non_string_values_with_the_domain_error(value: object) -> None:
    with pytest.raises(InvalidDomainError, match=_GENERIC_MESSAGE):
        clean_domain(value)  # type: ignore[arg-type]


def test_invalid_domain_error_is_a_value_error_so_generic_handlers_still_catch_it() -> None:
    # Given any rejected input
    # When cleaning fails
    with pytest.raises(ValueError, match="Invalid domain format") as excinfo:
        clean_domain("not a domain")

    # Then the specific subclass was raised
    assert isinstance(excinfo.value, InvalidDomainError)


def test_clean_domain_chains_the_idna_error_for_logs_but_keeps_the_generic_message() -> None:
    # Given a name that idna refuses
    # When it is cleaned
    with pytest.raises(InvalidDomainError) as excinfo:
        clean_domain("☃.com")

    # Then the message stays generic and the cause is kept for debugging
    assert str(excinfo.value) == "Invalid domain format"
    assert isinstance(excinfo.value.__cause__, UnicodeError)


@pytest.mark.parametrize(
    ("host", "parent", "expected"),
    [
        pytest.param("example.com", "example.com", True, id="same-host"),
        pytest.param("shop.example.com", "example.com", True, id="direct-subdomain"),
        pytest.param("a.b.example.com", "example.com", True, id="nested-subdomain"),
        pytest.param("badexample.com", "example.com", False, id="suffix-without-dot-boundary"),
        pytest.param("example.com", "shop.example.com", False, id="parent-below-host"),
        pytest.param("example.com.evil.io", "example.com", False, id="parent-as-prefix"),
        pytest.param("example.co", "example.com", False, id="different-tld"),
        pytest.param("xn--bcher-kva.de", "de", True, id="under-tld"),
    ],
)
def test_is_same_or_subdomain_matches_only_on_label_boundaries(
    host: str, parent: str, expected: bool
) -> None:
    assert is_same_or_subdomain(host, parent) is expected


# Characters that drive the parser into its branches far more often than arbitrary text does.
_URLISH_ALPHABET = st.sampled_from(
    [
        *"abcxyz0129-.:/@?#[]_*% \t\n\\\x00AZüß。",
        "\N{FULLWIDTH FULL STOP}",
        "\N{FULLWIDTH SOLIDUS}",
        "\N{FULLWIDTH COMMERCIAL AT}",
    ]
)
# Noisy URLs built from fragments: mostly harmless decoration with a few near misses, so
# that a fair share of examples survives cleaning and gets its result checked.
_PREFIXES = st.sampled_from(
    [
        "",
        "",
        "https://",
        "//",
        "user:pw@",
        "@",
        " ",
        "HTTP://a@",
        ":8080",
        "\\",
        "-",
        "\N{FULLWIDTH COMMERCIAL AT}",
    ]
)
_LABELISH = st.sampled_from(
    ["a", "B9", "com", "shop", "xn--p1ai", "bücher", "ß", "1", "localhost", "xn--", "*", "a_b"]
)
_SEPARATORS = st.sampled_from([".", ".", ".", "。", "\N{FULLWIDTH FULL STOP}", "..", ""])
_SUFFIXES = st.sampled_from(["", "", ":8080", "/", "?#", "/[::1]", " ", ".", ":x", "\x00", "-", "@"])


@st.composite
def _noisy_urls(draw: st.DrawFn) -> str:
    parts = [draw(_PREFIXES), draw(_LABELISH)]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        parts += [draw(_SEPARATORS), draw(_LABELISH)]
    parts.append(draw(_SUFFIXES))
    return "".join(parts)


_ARBITRARY_TEXT = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=_URLISH_ALPHABET, max_size=60),
    _noisy_urls(),
)


@settings(max_examples=500)
@given(raw=_ARBITRARY_TEXT)
def test_clean_domain_on_arbitrary_text_either_rejects_or_returns_a_valid_fixed_point(raw: str) -> None:
    # Given arbitrary text
    # When it is cleaned
    try:
        cleaned = clean_domain(raw)
    except InvalidDomainError:
        return

    # Then the result meets the spec's rules and cleaning it again changes nothing
    assert _meets_spec(cleaned), cleaned
    assert clean_domain(cleaned) == cleaned


_LABELS = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_TLDS = st.one_of(
    st.from_regex(r"[a-z]{2,12}", fullmatch=True).filter(lambda tld: tld != "localhost"),
    st.sampled_from(["xn--p1ai", "xn--zckzah", "xn--80asehdb"]),
)


@st.composite
def _decorated_hosts(draw: st.DrawFn) -> tuple[str, str]:
    labels = draw(st.lists(_LABELS, min_size=1, max_size=4))
    host = ".".join([*labels, draw(_TLDS)])
    # Random per-character uppercase: the result must not depend on the input's case.
    upper = draw(st.lists(st.booleans(), min_size=len(host), max_size=len(host)))
    cased = "".join(ch.upper() if up else ch for ch, up in zip(host, upper, strict=True))
    scheme = draw(st.sampled_from(["", "http://", "https://", "HTTPS://", "//", "wss://", "git+ssh://"]))
    credentials = draw(st.sampled_from(["", "user@", "user:p%40ss@", "a@b@"]))
    trailing_dot = draw(st.sampled_from(["", "."]))
    port = draw(st.sampled_from(["", ":", ":80", ":8443", ":65535"]))
    tail = draw(st.sampled_from(["", "/", "/path/x.js", "?q=1", "#frag", "/a?b=c#d", "/?@:x"]))
    padding = draw(st.sampled_from(["", " ", "\t", "\n", " \r\n"]))
    raw = f"{padding}{scheme}{credentials}{cased}{trailing_dot}{port}{tail}{padding}"
    return raw, host


@given(case=_decorated_hosts())
def test_clean_domain_strips_random_url_decoration_back_to_the_bare_lowercase_host(
    case: tuple[str, str],
) -> None:
    # Given a valid host wrapped in a random scheme, credentials, port, path and case
    raw, host = case

    # When the decorated text is cleaned
    cleaned = clean_domain(raw)

    # Then only the lowercase host remains
    assert cleaned == host
    assert _meets_spec(cleaned)
