"""Strict JSON: what every JSON parser accepts, Meta's included.

Python's json module reads and writes NaN and Infinity, and strings with lone surrogates (from a
`"\\ud800"` escape), none of which is valid JSON text. Intake refuses them in what goes to Meta, and
the publisher serialises with allow_nan=False, so Meta never receives an invalid request.
"""

import json
from typing import Any


def is_strict_json(value: Any) -> bool:
    """True when `value` serialises to valid JSON: no NaN or Infinity, no lone surrogate."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except ValueError:  # UnicodeEncodeError is one
        return False
    return True
