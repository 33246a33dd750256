"""The one config base of every package: a frozen, keyword-only dataclass, serialised once.

Subclass it with ``@dataclass(frozen=True, kw_only=True)`` and comment each field (nanoGPT style); the
base gives ``to_dict`` / ``from_dict`` / ``replace`` / ``save`` / ``load`` (written once, as peft's
``PeftConfigMixin``) and a registry of every config class by name (as torchao's ``AOBaseConfig``).

* ``from_dict`` rejects unknown keys, naming them and the expected ones;
* tuples round-trip through JSON lists (``tuple[int, ...]`` fields come back as tuples), and nested
  ``Config`` fields round-trip as dicts;
* ``__post_init__`` calls :meth:`Config.validate`, where subclasses check their values with the helpers
  of :mod:`papercommon.checks`.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True, kw_only=True)
    ... class TrainConfig(Config):
    ...     lr: float = 3e-4          # AdamW learning rate
    ...     betas: tuple[float, float] = (0.9, 0.95)
    >>> cfg = TrainConfig(lr=1e-3)
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="Config")

#: Every :class:`Config` subclass, by ``"<module's top package>.<ClassName>"``.
CONFIGS: dict[str, type[Config]] = {}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Base class of every package config (see the module docstring)."""

    _registry_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._registry_name = f"{cls.__module__.split('.')[0]}.{cls.__name__}"
        CONFIGS[cls._registry_name] = cls

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field when a value is out of range (override; default: no check)."""

    # --- serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Field name -> value; nested configs become dicts, tuples stay tuples (JSON writes lists)."""
        return {f.name: _to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Build from :meth:`to_dict` output (or parsed JSON). Unknown keys raise ``ValueError``."""
        if not isinstance(d, dict):
            raise TypeError(f"{cls.__name__}.from_dict: expected a dict, got {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"{cls.__name__}.from_dict: unknown key(s) {unknown}; expected a subset of "
                             f"{sorted(fields)}")
        hints = typing.get_type_hints(cls)
        return cls(**{k: _from_plain(v, hints.get(k, Any)) for k, v in d.items()})

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied (validated again). Unknown names raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(self) if f.init}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"{type(self).__name__}.replace: unknown field(s) {unknown}; expected a subset of "
                             f"{sorted(names)}")
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as indented JSON."""
        from papercommon.records import write_json

        return write_json(path, self.to_dict())

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read a config written by :meth:`save`; a missing or corrupt file raises naming the path."""
        from papercommon.records import read_json

        return cls.from_dict(read_json(path, f"a config file of {cls.__name__} (written by save)"))


def _to_plain(v: Any) -> Any:
    if isinstance(v, Config):
        return v.to_dict()
    if isinstance(v, tuple):
        return tuple(_to_plain(x) for x in v)
    if isinstance(v, list):
        return [_to_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _to_plain(x) for k, x in v.items()}
    return v


def _from_plain(v: Any, hint: Any) -> Any:
    """Undo JSON's flattening: lists back to tuples where the annotation says tuple, dicts to configs."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if v is None:
            return None
        for arm in typing.get_args(hint):
            if arm is not type(None) and (_is_tuple(arm) or _is_config(arm)):
                return _from_plain(v, arm)
        return v
    if _is_config(hint) and isinstance(v, dict):
        return hint.from_dict(v)
    if _is_tuple(hint) and isinstance(v, list | tuple):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_plain(x, args[0]) for x in v)
        if args and len(args) == len(v):
            return tuple(_from_plain(x, a) for x, a in zip(v, args))
        return tuple(v)
    return v


def _is_tuple(hint: Any) -> bool:
    return hint is tuple or typing.get_origin(hint) is tuple


def _is_config(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Config)
