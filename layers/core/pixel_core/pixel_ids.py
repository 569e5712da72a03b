"""Pixel ids: non-negative integers of up to 64 bits, given as JSON numbers or digit strings.

Meta pixel ids have 15-17 digits, past GraphQL's 32-bit `Int`, so the API takes them through a
custom scalar that accepts both forms.
"""

MAX_PIXEL_ID = 2**64 - 1
_MAX_DIGITS = len(str(MAX_PIXEL_ID))


class InvalidPixelIdError(ValueError):
    pass


def parse_pixel_id(value: object) -> int:
    # bool is an int subclass: `true` must not become pixel 1.
    if isinstance(value, bool):
        raise InvalidPixelIdError("Pixel id must be a non-negative integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and 0 < len(value) <= _MAX_DIGITS and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise InvalidPixelIdError("Pixel id must be a non-negative integer or a string of digits")
    if not 0 <= number <= MAX_PIXEL_ID:
        raise InvalidPixelIdError("Pixel id must be between 0 and 2^64-1")
    return number


def pixel_sort_key(pixel_id: int) -> str:
    """Zero-padded so that string order in DynamoDB is numeric order."""
    return f"{pixel_id:0{_MAX_DIGITS}d}"
