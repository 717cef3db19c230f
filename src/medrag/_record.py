"""The JSON converter behind every type in :mod:`medrag.types`: ``to_dict`` writes plain
JSON types (tuples become lists, nested records dicts); ``from_dict`` rebuilds a record
with per-field converters compiled once per class from its type hints, and refuses
unknown keys."""

from __future__ import annotations

import dataclasses
import types as _pytypes
import typing
from typing import Any, TypeVar

__all__ = ["_Record"]

T = TypeVar("T", bound="_Record")


class _Record:
    """Mixin: JSON-ready ``to_dict`` and a type-checked ``from_dict``."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a dict of plain JSON types (tuples become lists)."""
        return {f.name: _dump(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Rebuild an instance from :meth:`to_dict` output; unknown keys are an error."""
        converters = _converters(cls)
        try:
            kwargs = {k: converters[k](v) for k, v in data.items()}
        except KeyError:
            unknown = sorted(set(data) - set(converters))
            raise ValueError(f"{cls.__name__}: unknown fields {unknown}") from None
        return cls(**kwargs)


_CONVERTERS: dict[type, dict[str, Any]] = {}


def _identity(v: Any) -> Any:
    return v


def _converters(cls: type) -> dict[str, Any]:
    """Per-field converters from JSON values, compiled once per class from its type
    hints (identity for plain values, tuple() for sequences, from_dict for records)."""
    conv = _CONVERTERS.get(cls)
    if conv is None:
        hints = typing.get_type_hints(cls)
        conv = {f.name: _converter(hints[f.name]) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        _CONVERTERS[cls] = conv
    return conv


def _converter(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, _pytypes.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1:
            c = _converter(inner[0])
            if c is _identity:
                return _identity
            return lambda v: None if v is None else c(v)
        return _identity
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            c = _converter(args[0])
            if c is _identity:
                return tuple
            return lambda v: tuple(c(x) for x in v)
        cs = [_converter(a) for a in args]
        return lambda v: tuple(f(x) for f, x in zip(cs, v))
    if origin is dict:
        c = _converter(typing.get_args(tp)[1])
        return dict if c is _identity else (lambda v: {k: c(x) for k, x in v.items()})
    if isinstance(tp, type) and issubclass(tp, _Record):
        return tp.from_dict
    return _identity


def _dump(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value
