"""Type checks against annotations and keyword checks against signatures, with messages
that say what was expected."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import inspect

__all__ = ["describe_mismatch", "format_type", "is_plain_class", "static_compatible", "unknown_keywords"]


def format_type(ann: Any) -> str:
    """``list[int]``, ``str``, ``Optional[int]``: an annotation as users write it."""
    if ann is type(None) or ann is None:
        return "None"
    if isinstance(ann, type) and not typing.get_args(ann):
        if ann.__module__ == "builtins":
            return ann.__qualname__
        return f"{ann.__module__}.{ann.__qualname__}"
    text = repr(ann)
    return text.replace("typing.", "")


def short_repr(value: Any, limit: int = 80, unprintable: str = "<{} object>") -> str:
    """``repr(value)`` cut to about ``limit`` characters; ``unprintable`` filled with the
    type's qualname when ``repr`` raises."""
    try:
        r = repr(value)
    except Exception:
        r = unprintable.format(type(value).__qualname__)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def describe_mismatch(value: Any, ann: Any) -> str | None:
    """None when ``value`` matches ``ann``; otherwise ``"expects X but got T (repr)"``."""
    if ann is Any or type(value) is ann:  # an instance of exactly the class: no need to ask typeguard
        return None
    import typeguard

    try:
        typeguard.check_type(
            value, ann, collection_check_strategy=typeguard.CollectionCheckStrategy.ALL_ITEMS
        )
    except typeguard.TypeCheckError as exc:
        detail = str(exc)
        got = f"{type(value).__qualname__} {short_repr(value)}"
        text = f"expects {format_type(ann)} but got {got}"
        # a detail that only restates the types, or spans lines (a union's
        # per-member report), would not fit the one-line message
        if (
            not detail.startswith(f"{type(value).__qualname__} is not")
            and not detail.startswith("value is not")
            and "\n" not in detail
        ):
            text += f" ({detail})"
        return text
    except Exception:  # an annotation typeguard cannot check is left unchecked
        return None
    return None


def is_plain_class(ann: Any) -> bool:
    """True for a concrete class that is not generic, a protocol or an ABC."""
    import abc

    if not isinstance(ann, type) or typing.get_args(ann) or ann is Any:
        return False
    if getattr(ann, "_is_protocol", False):
        return False
    return not isinstance(ann, abc.ABCMeta)


def _members(ann: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(ann)
    import types

    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(ann)
    return None


def static_compatible(produced: Any, expected: Any) -> bool:
    """Whether a producer annotated ``produced`` may feed a parameter ``expected``.

    Only plain classes are judged (DESIGN §12); anything else is accepted here and
    left to the run-time check.
    """
    members = _members(expected)
    if members is not None:
        if not all(is_plain_class(m) or m is type(None) for m in members):
            return True
        if is_plain_class(produced) or produced is type(None):
            return any(static_compatible(produced, m) for m in members)
        return True
    if produced is None:
        produced = type(None)
    if expected is None:
        expected = type(None)
    if not (is_plain_class(produced) or produced is type(None)):
        return True
    if not (is_plain_class(expected) or expected is type(None)):
        return True
    if issubclass(produced, expected):
        return True
    if produced is int and expected in (float, complex):
        return True
    return produced is float and expected is complex


def unknown_keywords(
    name: str, params: Mapping[str, inspect.Parameter], kwargs: Mapping[str, Any]
) -> str | None:
    """``unknown parameter 'factr' (did you mean 'factor'?); scale() takes x, factor``,
    or None when every keyword names a parameter (or the function takes ``**kwargs``)."""
    import difflib

    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    unknown = [k for k in kwargs if k not in params]
    if not unknown:
        return None  # e.g. a positional-only parameter given by name: Python's message says it
    named = [n for n, p in params.items() if p.kind not in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL)]
    text = (
        f"unknown parameter {unknown[0]!r}"
        if len(unknown) == 1
        else ("unknown parameters " + ", ".join(repr(k) for k in unknown))
    )
    close = difflib.get_close_matches(unknown[0], named, n=1)
    if close:
        text += f" (did you mean {close[0]!r}?)"
    shown: list[str] = []
    for n, p in params.items():
        if p.kind is p.KEYWORD_ONLY and not any(s.startswith("*") for s in shown):
            shown.append("*")
        shown.append(f"*{n}" if p.kind is p.VAR_POSITIONAL else n)
    return f"{text}; {name}() takes {', '.join(shown) or 'no parameters'}"
