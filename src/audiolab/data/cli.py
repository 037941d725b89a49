"""``key=value`` arguments of ``python -m audiolab.prepare <recipe> …``: one parser for every recipe.

A recipe declares its keys with a converter each (``str``, ``int``, ``float``, :func:`boolean`,
``optional(int)``, :func:`comma_list`, or any ``str -> value`` callable raising ``ValueError``) and gets a dict of
typed values. Every mistake is a one-line ``SystemExit`` naming the recipe and the key::

    prepare ddsp: unknown key 'bogus' (keys: input_dir, cache_dir, ...)
    prepare ddsp: bad value for sample_rate: invalid literal for int() with base 10: 'x'
    prepare codec_tokens: expected key=value, got 'audio/' (keys: ...)
    prepare codec_tokens: input_dir=... required (keys: ...)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["parse_key_values", "boolean", "optional", "comma_list", "NULLS"]

#: Values read as "none" by :func:`optional`.
NULLS = ("", "none", "null")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def boolean(value: str) -> bool:
    """``1/true/yes/on`` -> True, ``0/false/no/off`` -> False (any case); anything else raises ValueError."""
    v = value.lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def optional(convert: Callable[[str], Any], nulls: Sequence[str] = NULLS) -> Callable[[str], Any]:
    """Converter that reads ``nulls`` (case-insensitive; default ``''``, ``none``, ``null``) as None, else ``convert``."""

    def parse(value: str) -> Any:
        return None if value.lower() in nulls else convert(value)

    parse.__name__ = f"optional_{getattr(convert, '__name__', 'value')}"
    return parse


def comma_list(value: str) -> tuple[str, ...]:
    """``"a, b,c"`` -> ``("a", "b", "c")`` (blank items dropped)."""
    return tuple(s.strip() for s in value.split(",") if s.strip())


def parse_key_values(
    argv: Sequence[str],
    keys: Mapping[str, Callable[[str], Any]],
    *,
    recipe: str,
    required: Sequence[str] = (),
) -> dict[str, Any]:
    """Parse ``key=value`` arguments into ``{key: keys[key](value)}`` (only the keys given).

    ``--key=value`` and ``key-name=value`` are accepted as ``key_name``. The last occurrence of a key wins.

    Args:
        argv: the recipe's arguments (after the recipe name).
        keys: allowed keys and their converters (``str -> value``; ``ValueError``/``TypeError`` = bad value).
        recipe: recipe name used in the error messages.
        required: keys that must be present.

    Raises:
        SystemExit: a one-line message on an argument without ``=``, an unknown key, a bad value or a missing
            required key (``python -m`` then exits with status 1 and prints it).
    """
    names = ", ".join(keys)
    out: dict[str, Any] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("-").replace("-", "_")
        if not sep:
            raise SystemExit(f"prepare {recipe}: expected key=value, got {arg!r} (keys: {names})")
        if key not in keys:
            raise SystemExit(f"prepare {recipe}: unknown key {key!r} (keys: {names})")
        try:
            out[key] = keys[key](value)
        except (ValueError, TypeError) as exc:
            raise SystemExit(f"prepare {recipe}: bad value for {key}: {exc}") from exc
    missing = [k for k in required if k not in out]
    if missing:
        raise SystemExit(f"prepare {recipe}: {', '.join(f'{k}=...' for k in missing)} required (keys: {names})")
    return out
