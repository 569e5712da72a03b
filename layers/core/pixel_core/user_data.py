"""Normalising and hashing of Meta Conversions API `user_data`: the one place that does it.

Meta matches an event to a person by SHA-256 digests of customer information, so the same person
must give the same digest whichever channel (Pixel, SDK, this gateway) sent it. The rules below
follow Meta's "Customer Information Parameters" page
(https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters)
and, where the page is silent, Meta's Python SDK (facebook-business, `adobjects/serverside/normalize.py`).
Where the two differ, the page wins; each rule says which it follows.

Values are personal data: no exception raised here ever contains one. Messages name the key and
what was expected, nothing else.
"""

import datetime
import hashlib
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Mapping

# Every key Meta documents for user_data, in the order its page lists them. Other code counts which
# of these an event carried.
MATCH_KEYS: tuple[str, ...] = (
    "em",
    "ph",
    "fn",
    "ln",
    "db",
    "ge",
    "ct",
    "st",
    "zp",
    "country",
    "external_id",
    "client_ip_address",
    "client_user_agent",
    "fbc",
    "fbp",
    "subscription_id",
    "fb_login_id",
    "lead_id",
    "anon_id",
    "madid",
    "page_id",
    "page_scoped_user_id",
    "ctwa_clid",
    "ig_account_id",
    "ig_sid",
)

# "Hashing required" on Meta's page (external_id: "Hashing recommended"; we always hash it).
HASHED_KEYS: frozenset[str] = frozenset(MATCH_KEYS[:11])
# "Do not hash" on Meta's page (madid has no marking there; the SDK sends it as it is).
UNHASHED_KEYS: frozenset[str] = frozenset(MATCH_KEYS[11:])

MAX_VALUES_PER_KEY = 10  # Meta takes a list for each hashed key; more than this is no one person
MAX_CLEAR_VALUE_LENGTH = 256  # any clear hashed-key value (an email address is at most 254)
MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path
MAX_PHONE_DIGITS = 15  # E.164
MIN_PHONE_DIGITS = 7  # the SDK's pattern: country code, area code, 4 or more digits
MIN_BIRTH_YEAR = 1900  # Meta: "Use the YYYY format from 1900 to current year"
MAX_CLIENT_IP_LENGTH = 45  # longest textual IPv6 address (with an IPv4 tail)
MAX_USER_AGENT_LENGTH = 1024  # as pixel_core.events
MAX_CLICK_ID_LENGTH = 512  # fbc, fbp, ctwa_clid
MAX_ID_LENGTH = 256  # the other unhashed identifiers
MAX_KEY_SHOWN = 40  # of an unknown key, in a message

_MAX_UNHASHED_LENGTH: dict[str, int] = {
    "client_ip_address": MAX_CLIENT_IP_LENGTH,
    "client_user_agent": MAX_USER_AGENT_LENGTH,
    "fbc": MAX_CLICK_ID_LENGTH,
    "fbp": MAX_CLICK_ID_LENGTH,
    "ctwa_clid": MAX_CLICK_ID_LENGTH,
}
# Meta types these two as integers; a string of digits is taken too.
_INTEGER_KEYS = frozenset({"fb_login_id", "lead_id"})

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# fb.${subdomain_index}.${creation_time}.${fbclid or random number}, perhaps with the parameter
# builder's appendix after it.
_FB_COOKIE = re.compile(r"fb\.[0-9]+\.[0-9]+\.[!-~]+")
_DIGITS = re.compile(r"[0-9]+")
_US_ZIP = re.compile(r"([0-9]{5})(?:[0-9]{4})?")
_DATE_YMD = re.compile(r"([0-9]{4})[-/. ]([0-9]{1,2})[-/. ]([0-9]{1,2})")
_DATE_MDY = re.compile(r"([0-9]{1,2})[-/. ]([0-9]{1,2})[-/. ]([0-9]{4})")
_DATE_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")

# ISO 3166-1 alpha-2, every officially assigned code (249; as pycountry 26.2.16 lists them).
ISO_COUNTRY_CODES: frozenset[str] = frozenset(
    [
        "ad",
        "ae",
        "af",
        "ag",
        "ai",
        "al",
        "am",
        "ao",
        "aq",
        "ar",
        "as",
        "at",
        "au",
        "aw",
        "ax",
        "az",
        "ba",
        "bb",
        "bd",
        "be",
        "bf",
        "bg",
        "bh",
        "bi",
        "bj",
        "bl",
        "bm",
        "bn",
        "bo",
        "bq",
        "br",
        "bs",
        "bt",
        "bv",
        "bw",
        "by",
        "bz",
        "ca",
        "cc",
        "cd",
        "cf",
        "cg",
        "ch",
        "ci",
        "ck",
        "cl",
        "cm",
        "cn",
        "co",
        "cr",
        "cu",
        "cv",
        "cw",
        "cx",
        "cy",
        "cz",
        "de",
        "dj",
        "dk",
        "dm",
        "do",
        "dz",
        "ec",
        "ee",
        "eg",
        "eh",
        "er",
        "es",
        "et",
        "fi",
        "fj",
        "fk",
        "fm",
        "fo",
        "fr",
        "ga",
        "gb",
        "gd",
        "ge",
        "gf",
        "gg",
        "gh",
        "gi",
        "gl",
        "gm",
        "gn",
        "gp",
        "gq",
        "gr",
        "gs",
        "gt",
        "gu",
        "gw",
        "gy",
        "hk",
        "hm",
        "hn",
        "hr",
        "ht",
        "hu",
        "id",
        "ie",
        "il",
        "im",
        "in",
        "io",
        "iq",
        "ir",
        "is",
        "it",
        "je",
        "jm",
        "jo",
        "jp",
        "ke",
        "kg",
        "kh",
        "ki",
        "km",
        "kn",
        "kp",
        "kr",
        "kw",
        "ky",
        "kz",
        "la",
        "lb",
        "lc",
        "li",
        "lk",
        "lr",
        "ls",
        "lt",
        "lu",
        "lv",
        "ly",
        "ma",
        "mc",
        "md",
        "me",
        "mf",
        "mg",
        "mh",
        "mk",
        "ml",
        "mm",
        "mn",
        "mo",
        "mp",
        "mq",
        "mr",
        "ms",
        "mt",
        "mu",
        "mv",
        "mw",
        "mx",
        "my",
        "mz",
        "na",
        "nc",
        "ne",
        "nf",
        "ng",
        "ni",
        "nl",
        "no",
        "np",
        "nr",
        "nu",
        "nz",
        "om",
        "pa",
        "pe",
        "pf",
        "pg",
        "ph",
        "pk",
        "pl",
        "pm",
        "pn",
        "pr",
        "ps",
        "pt",
        "pw",
        "py",
        "qa",
        "re",
        "ro",
        "rs",
        "ru",
        "rw",
        "sa",
        "sb",
        "sc",
        "sd",
        "se",
        "sg",
        "sh",
        "si",
        "sj",
        "sk",
        "sl",
        "sm",
        "sn",
        "so",
        "sr",
        "ss",
        "st",
        "sv",
        "sx",
        "sy",
        "sz",
        "tc",
        "td",
        "tf",
        "tg",
        "th",
        "tj",
        "tk",
        "tl",
        "tm",
        "tn",
        "to",
        "tr",
        "tt",
        "tv",
        "tw",
        "tz",
        "ua",
        "ug",
        "um",
        "us",
        "uy",
        "uz",
        "va",
        "vc",
        "ve",
        "vg",
        "vi",
        "vn",
        "vu",
        "wf",
        "ws",
        "ye",
        "yt",
        "za",
        "zm",
        "zw",
    ]
)
# Meta's own example normalises "United States" to "us"; only that country's names are mapped.
_COUNTRY_NAMES: dict[str, str] = {"unitedstates": "us", "unitedstatesofamerica": "us", "usa": "us"}

# Meta asks for the 2-character ANSI (FIPS 5-2) code of a U.S. state: the names map to it, so
# "California" and "CA" give the same digest.
_US_STATES: dict[str, str] = {
    "alabama": "al",
    "alaska": "ak",
    "arizona": "az",
    "arkansas": "ar",
    "california": "ca",
    "colorado": "co",
    "connecticut": "ct",
    "delaware": "de",
    "districtofcolumbia": "dc",
    "florida": "fl",
    "georgia": "ga",
    "hawaii": "hi",
    "idaho": "id",
    "illinois": "il",
    "indiana": "in",
    "iowa": "ia",
    "kansas": "ks",
    "kentucky": "ky",
    "louisiana": "la",
    "maine": "me",
    "maryland": "md",
    "massachusetts": "ma",
    "michigan": "mi",
    "minnesota": "mn",
    "mississippi": "ms",
    "missouri": "mo",
    "montana": "mt",
    "nebraska": "ne",
    "nevada": "nv",
    "newhampshire": "nh",
    "newjersey": "nj",
    "newmexico": "nm",
    "newyork": "ny",
    "northcarolina": "nc",
    "northdakota": "nd",
    "ohio": "oh",
    "oklahoma": "ok",
    "oregon": "or",
    "pennsylvania": "pa",
    "rhodeisland": "ri",
    "southcarolina": "sc",
    "southdakota": "sd",
    "tennessee": "tn",
    "texas": "tx",
    "utah": "ut",
    "vermont": "vt",
    "virginia": "va",
    "washington": "wa",
    "westvirginia": "wv",
    "wisconsin": "wi",
    "wyoming": "wy",
    "americansamoa": "as",
    "guam": "gu",
    "northernmarianaislands": "mp",
    "puertorico": "pr",
    "usvirginislands": "vi",
}


class InvalidUserData(ValueError):
    """A user_data key or value Meta would not take. The message never contains a value."""

    def __init__(self, key: str, expected: str) -> None:
        super().__init__(f"user_data.{key}: {expected}")
        self.key = key
        self.expected = expected


def _shown(key: object) -> str:
    """An unknown key, safe to print: it comes from the caller, so it is cut short and escaped."""
    if not isinstance(key, str):
        return f"<key of type {type(key).__name__}>"
    text = key if len(key) <= MAX_KEY_SHOWN else key[:MAX_KEY_SHOWN] + "..."
    return ascii(text)[1:-1].replace(" ", "\\x20")


def _has_control(text: str) -> bool:
    """Control characters and lone surrogates: no identifier holds them, and a surrogate cannot be
    encoded as UTF-8 for hashing."""
    return any(unicodedata.category(char) in {"Cc", "Cs"} for char in text)


def _letters(text: str) -> str:
    """Only letters and combining marks, in NFC so that "é" hashes the same however it was typed."""
    composed = unicodedata.normalize("NFC", text)
    return "".join(char for char in composed if unicodedata.category(char)[0] in "LM")


def _email(key: str, text: str) -> str:
    # Meta: "Trim any leading and trailing spaces. Convert all characters to lowercase."
    # The SDK also refuses what is not shaped like an address.
    value = text.lower()
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(value):
        raise InvalidUserData(key, "expected an email address (name@domain.tld)")
    return value


def _phone(key: str, text: str) -> str:
    # Meta: "Remove symbols, letters, and any leading zeros"; the number must carry its country code,
    # which cannot be told from the digits, so it is the sender's to include. Letters are refused
    # (as the SDK does) rather than dropped: a number spelled with letters would hash to another.
    if any(char.isalpha() for char in text):
        raise InvalidUserData(key, "expected a phone number of digits with its country code")
    digits = "".join(char for char in text if "0" <= char <= "9").lstrip("0")
    if not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
        raise InvalidUserData(
            key,
            f"expected a phone number with its country code, {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} digits",
        )
    return digits


def _name(key: str, text: str) -> str:
    # Meta: "Lowercase only with no punctuation. If using special characters, the text must be
    # encoded in UTF-8": punctuation and symbols go, letters of any script (and spaces between
    # them) stay. The SDK only lowercases; it keeps "o'brien" where Meta asks for "obrien".
    composed = unicodedata.normalize("NFC", text.lower())
    kept = "".join(char for char in composed if unicodedata.category(char)[0] in "LMNZ")
    value = " ".join(kept.split())
    if not any(unicodedata.category(char)[0] == "L" for char in value):
        raise InvalidUserData(key, "expected a name with at least one letter")
    return value


def _gender(key: str, text: str) -> str:
    # Meta: "gender in the form of an initial in lowercase": f for female, m for male.
    value = text.lower()
    if value in {"f", "female"}:
        return "f"
    if value in {"m", "male"}:
        return "m"
    raise InvalidUserData(key, "expected f or m (female or male)")


def _birth_date(key: str, text: str) -> str:
    # Meta: "We accept the YYYYMMDD format accommodating a range of month, day and year
    # combinations, with or without punctuation", years 1900 to the current one; its example is
    # 2/16/1997 -> 19970216. Taken: YYYYMMDD, YYYY-MM-DD and MM/DD/YYYY (any of - / . or space
    # between). Day first (16/02/1997) is not guessed at: its month is out of range and refused.
    # The SDK hashes db as it is given.
    parts: tuple[str, str, str] | None = None
    if match := _DATE_COMPACT.fullmatch(text) or _DATE_YMD.fullmatch(text):
        parts = (match[1], match[2], match[3])
    elif match := _DATE_MDY.fullmatch(text):
        parts = (match[3], match[1], match[2])
    expected = "expected a date of birth as YYYYMMDD, YYYY-MM-DD or MM/DD/YYYY"
    if parts is None:
        raise InvalidUserData(key, expected)
    try:
        born = datetime.date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        raise InvalidUserData(key, expected + ", a real date") from None
    if not MIN_BIRTH_YEAR <= born.year <= datetime.datetime.now(datetime.UTC).year:
        raise InvalidUserData(key, f"expected a year of birth from {MIN_BIRTH_YEAR} to this year")
    return born.strftime("%Y%m%d")


def _city(key: str, text: str) -> str:
    # Meta: "Lowercase only with no punctuation, no special characters, and no spaces", UTF-8
    # letters allowed ("newyork"). Digits go too, as the SDK drops them.
    value = _letters(text.lower())
    if not value:
        raise InvalidUserData(key, "expected a city name with at least one letter")
    return value


def _state(key: str, text: str) -> str:
    # Meta: the 2-character ANSI code in lowercase for U.S. states; elsewhere "lowercase with no
    # punctuation, no special characters, and no spaces". A U.S. state's full name becomes its code.
    value = _letters(text.lower())
    if not value:
        raise InvalidUserData(key, "expected a state: a U.S. state code or a region's name")
    return _US_STATES.get(value, value)


def _zip(key: str, text: str) -> str:
    # Meta: "Use lowercase with no spaces and no dash. Use only the first 5 digits for U.S. zip
    # codes" (94035-1234 -> 94035; UK: m11ae). A U.S. ZIP+4 is told by its shape, 5 + 4 digits.
    value = "".join(text.lower().replace("-", " ").split())
    if us_zip := _US_ZIP.fullmatch(value):
        return us_zip[1]
    if not value.isalnum():
        raise InvalidUserData(key, "expected a postal code of letters and digits")
    return value


def _country(key: str, text: str) -> str:
    # Meta: "the lowercase, 2-letter country codes in ISO 3166-1 alpha-2"; its example maps
    # "United States" to "us". The SDK refuses codes pycountry does not know; so does this.
    letters = "".join(char for char in text.lower() if "a" <= char <= "z")
    value = _COUNTRY_NAMES.get(letters, letters)
    if value not in ISO_COUNTRY_CODES:
        raise InvalidUserData(key, "expected a 2-letter ISO 3166-1 alpha-2 country code")
    return value


def _external_id(key: str, text: str) -> str:
    # Meta: "it should be in the same format as when sent via" other channels, so the ID is only
    # trimmed, never lowercased: the SDK does not touch it at all (nor hash it).
    return text


_NORMALISERS: dict[str, Callable[[str, str], str]] = {
    "em": _email,
    "ph": _phone,
    "fn": _name,
    "ln": _name,
    "db": _birth_date,
    "ge": _gender,
    "ct": _city,
    "st": _state,
    "zp": _zip,
    "country": _country,
    "external_id": _external_id,
}


def normalise(key: str, value: str) -> str:
    """The clear value Meta hashes for `key` (or the lowercase digest, if `value` is one already)."""
    given_key: object = key  # callers need not be typed; check what came
    given: object = value
    if not isinstance(given_key, str) or given_key not in HASHED_KEYS:
        raise InvalidUserData(_shown(given_key), "not a user_data key that is hashed")
    if not isinstance(given, str):
        raise InvalidUserData(key, "expected a string")
    if len(value) > MAX_CLEAR_VALUE_LENGTH:
        raise InvalidUserData(key, f"expected at most {MAX_CLEAR_VALUE_LENGTH} characters")
    text = value.strip()
    if not text:
        raise InvalidUserData(key, "expected a value, not an empty string")
    if _has_control(text):
        raise InvalidUserData(key, "expected no control characters")
    if _SHA256_HEX.fullmatch(text):
        return text.lower()
    return _NORMALISERS[key](key, text)


def hashed(key: str, value: str) -> str:
    """The SHA-256 digest (lowercase hex) Meta takes for `key`; a digest given is kept, not rehashed."""
    clear = normalise(key, value)
    if _SHA256_HEX.fullmatch(clear):
        return clear
    return hashlib.sha256(clear.encode("utf-8")).hexdigest()


def _unhashed(key: str, value: object) -> object:
    """An unhashed value, checked and sent as it came."""
    if key in _INTEGER_KEYS and isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise InvalidUserData(key, "expected a positive integer ID")
        return value
    if not isinstance(value, str):
        expected = "an integer ID or a string of digits" if key in _INTEGER_KEYS else "a string"
        raise InvalidUserData(key, f"expected {expected}")
    limit = _MAX_UNHASHED_LENGTH.get(key, MAX_ID_LENGTH)
    if len(value) > limit:
        raise InvalidUserData(key, f"expected at most {limit} characters")
    if not value.strip():
        raise InvalidUserData(key, "expected a value, not an empty string")
    if _has_control(value):
        raise InvalidUserData(key, "expected no control characters")
    if key in _INTEGER_KEYS and not (value.isascii() and _DIGITS.fullmatch(value)):
        raise InvalidUserData(key, "expected an integer ID or a string of digits")
    if key == "client_ip_address":
        # Meta: "must be a valid IPV4 or IPV6 address"; "No spaces". A zone index (%eth0) is no
        # client's address.
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise InvalidUserData(key, "expected an IPv4 or IPv6 address") from None
        if "%" in value:
            raise InvalidUserData(key, "expected an IPv4 or IPv6 address without a zone index")
    if key in {"fbc", "fbp"} and not _FB_COOKIE.fullmatch(value):
        raise InvalidUserData(key, "expected fb.<subdomain index>.<creation time>.<value>")
    return value


def prepare(user_data: Mapping[str, object]) -> dict[str, object]:
    """Meta-ready user_data: each hashed key a list of distinct digests, the others as they came.

    A hashed key takes a string or a list of strings (Meta: "string or list<string>"); the SDK
    always sends a list, and so does this. Any bad key or value refuses the whole mapping.
    """
    given: object = user_data  # callers need not be typed; check what came
    if not isinstance(given, Mapping):
        raise InvalidUserData("<user_data>", "expected an object")
    prepared: dict[str, object] = {}
    for key, value in user_data.items():
        if not isinstance(key, str) or key not in MATCH_KEYS:
            raise InvalidUserData(_shown(key), "not a user_data key Meta documents")
        if key in UNHASHED_KEYS:
            prepared[key] = _unhashed(key, value)
            continue
        values: list[object]
        if isinstance(value, str):
            values = [value]
        elif isinstance(value, list | tuple):
            values = list(value)
        else:
            raise InvalidUserData(key, "expected a string or a list of strings")
        if not values:
            raise InvalidUserData(key, "expected at least one value, not an empty list")
        if len(values) > MAX_VALUES_PER_KEY:
            raise InvalidUserData(key, f"expected at most {MAX_VALUES_PER_KEY} values")
        digests: list[str] = []
        for item in values:
            if not isinstance(item, str):
                raise InvalidUserData(key, "expected a string or a list of strings")
            digest = hashed(key, item)
            if digest not in digests:
                digests.append(digest)
        prepared[key] = digests
    return prepared
