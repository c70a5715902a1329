"""Frozen dataclass configs that round-trip to dict, JSON and YAML and reject unknown keys.

A config class is a ``@dataclass(frozen=True)`` that also derives from :class:`Config`. Lists in
the input become tuples, nested configs are rebuilt from nested dicts, and a field typed with a
*family* base class (one that owns a ``family`` registry, e.g. every encoder config) is rebuilt
from the ``"name"`` key of its dict.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Optim(Config):
    ...     lr: float = 0.01
    ...     betas: tuple[float, ...] = (0.9, 0.99)
    >>> Optim.from_dict({"lr": 0.1, "betas": [0.8, 0.9]})
    Optim(lr=0.1, betas=(0.8, 0.9))
    >>> Optim.from_dict({"lr": 0.1, "beta": 1})
    Traceback (most recent call last):
    ...
    multitask_unet.errors.ConfigError: Optim has no option 'beta'. Did you mean 'betas'? Valid options: betas, lr.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import numbers
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union

from multitask_unet.errors import ConfigError, RegistryError
from multitask_unet.registry import Registry

__all__ = ["SEED_MAX", "Config", "check_seed"]

C = TypeVar("C", bound="Config")

SEED_MAX = 2**32 - 1
"""The largest random seed: NumPy takes seeds from 0 to ``2**32 - 1``."""


def check_seed(value: object, name: str = "seed") -> int:
    """``value`` as a random seed: a whole number from 0 to :data:`SEED_MAX` (NumPy's range).

    Args:
        value: The seed to check.
        name: What the seed is called in the error, e.g. ``"runtime.seed"`` or ``"--seed"``.

    Raises:
        ConfigError: ``value`` is not a whole number (``bool`` included) or out of range.

    Example:
        >>> check_seed(7)
        7
        >>> check_seed(-1, "split seed")
        Traceback (most recent call last):
        ...
        multitask_unet.errors.ConfigError: split seed must be from 0 to 4294967295 (a whole number, NumPy's seed range), got -1
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not 0 <= int(value) <= SEED_MAX
    ):
        raise ConfigError(
            f"{name} must be from 0 to {SEED_MAX} (a whole number, NumPy's seed range), "
            f"got {value!r}"
        )
    return int(value)


class Config:
    """Mixin giving frozen dataclasses dict / JSON / YAML round-trips with strict keys.

    A family base class sets ``family: ClassVar[Registry]``; its concrete subclasses set
    ``name: ClassVar[str]`` and are registered in that family automatically.
    """

    family: ClassVar[Registry[type[Config]] | None] = None
    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.family is not None and "name" in cls.__dict__ and cls.name:
            cls.family.add(cls.name, cls)

    # -- dict ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict; family members carry their ``"name"`` first."""
        out: dict[str, Any] = {"name": self.name} if self._is_family_member() else {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            out[f.name] = _to_plain(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """Build the config from a dict, checking every key; lists become tuples."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{cls.__name__} must be built from a mapping, got {type(data).__name__}"
            )
        data = dict(data)
        target: type[C] = cls
        if cls.family is not None:
            family_name = data.pop("name", cls.name or None)
            if family_name is None:
                raise ConfigError(
                    f"{cls.__name__} needs a 'name' key; one of: {', '.join(cls.family.list())}"
                )
            try:
                target = cls.family.get(family_name)  # type: ignore[assignment]
            except RegistryError as exc:
                raise ConfigError(f"{cls.__name__}: {exc}") from None
            if not issubclass(target, cls):
                raise ConfigError(f"{family_name!r} is a {target.__name__}, not a {cls.__name__}")
        hints = typing.get_type_hints(target)
        fields = {f.name: f for f in dataclasses.fields(target) if f.init}  # type: ignore[arg-type]
        kwargs = {}
        for key, value in data.items():
            if key not in fields:
                close = difflib.get_close_matches(str(key), fields, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"{target.__name__} has no option {key!r}.{hint} "
                    f"Valid options: {', '.join(sorted(fields))}."
                )
            kwargs[key] = _from_plain(value, hints[key], f"{target.__name__}.{key}")
        missing = [name for name, f in fields.items() if name not in kwargs and _required(f)]
        if missing:
            raise ConfigError(
                f"{target.__name__} needs {', '.join(repr(m) for m in missing)} "
                f"(no default); give {'it' if len(missing) == 1 else 'them'} in the file or dict"
            )
        try:
            return target(**kwargs)
        except TypeError as exc:  # a __post_init__ check that meets a value of a wrong type
            raise ConfigError(f"{target.__name__}: {exc}") from None

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed, validated like the original."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def merged(self: C, overrides: Mapping[str, Any]) -> C:
        """A copy with nested options changed, validated like the original.

        ``overrides`` is merged into :meth:`to_dict` key by key: a mapping given for a mapping
        changes only the keys it names, at any depth; any other value (a list, a name, None)
        replaces the old one. A mapping whose ``"name"`` differs from the one it overrides
        replaces it whole: its options belong to another component.

        Args:
            overrides: Nested options, as the config's dict or YAML file spells them.

        Raises:
            ConfigError: ``overrides`` is not a mapping, or the merged options are invalid.

        Example:
            >>> from dataclasses import dataclass, field
            >>> @dataclass(frozen=True)
            ... class Layer(Config):
            ...     options: dict = field(default_factory=dict)
            ...     depth: int = 2
            >>> Layer({"a": 1, "b": {"c": 2}}).merged({"options": {"b": {"d": 3}}})
            Layer(options={'a': 1, 'b': {'c': 2, 'd': 3}}, depth=2)
        """
        if not isinstance(overrides, Mapping):
            raise ConfigError(
                f"{type(self).__name__}.merged takes a mapping of options, got "
                f"{type(overrides).__name__}; e.g. {{'section': {{'key': value}}}}"
            )
        return type(self).from_dict(_merge(self.to_dict(), overrides))

    # -- text ---------------------------------------------------------------------------------
    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **{"indent": 2, **kwargs})

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls: type[C], text: str) -> C:
        import yaml

        return cls.from_dict(yaml.safe_load(text) or {})

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``.json`` or ``.yaml``/``.yml`` by extension."""
        path = Path(path)
        text = self.to_yaml() if path.suffix in (".yaml", ".yml") else self.to_json()
        path.write_text(text, encoding="utf-8")

    @classmethod
    def load(cls: type[C], path: str | os.PathLike[str]) -> C:
        """Read ``.yaml``/``.yml`` or (any other name) ``.json``.

        Raises:
            ConfigError: The file is missing or a folder, its text is not YAML / JSON, or its
                content is not a valid config; the message names the file.
        """
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"config file {path} is a folder; give the .yaml or .json file")
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        data = _parse_file(path)
        try:
            return cls.from_dict(data if data is not None else {})
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def _is_family_member(self) -> bool:
        return type(self).family is not None and bool(type(self).name)


def _parse_file(path: Path) -> Any:
    """The data of a YAML (by its extension) or JSON file; a syntax error names the line."""
    import yaml

    is_yaml = path.suffix in (".yaml", ".yml")
    kind = "YAML" if is_yaml else "JSON (read as JSON by its extension; name a YAML file .yaml)"
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.safe_load(text) if is_yaml else json.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file; give a .yaml or .json config") from None
    except json.JSONDecodeError as exc:
        problem = f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = f"{where}{getattr(exc, 'problem', None) or exc}"
    raise ConfigError(f"{path} is not valid {kind}: {problem}; fix the file")


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in recursively (see :meth:`Config.merged`)."""
    out = dict(base)
    for key, value in overrides.items():
        old = out.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            same = "name" not in value or old.get("name") == value["name"]
            out[key] = _merge(old, value) if same else dict(value)
        else:
            out[key] = value
    return out


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _to_plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    return value


def _from_plain(value: Any, hint: Any, where: str) -> Any:
    """Convert ``value`` to the annotated type ``hint`` (recursively), or raise ConfigError."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _from_plain(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {hint}"
        )
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_plain(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{where} must have {len(args)} items, got {len(value)}: {value!r}")
        return tuple(
            _from_plain(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))
        )
    if origin in (dict, Mapping, typing.Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        value_hint = args[1] if args else Any
        return {k: _from_plain(v, value_hint, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Config):
        return value if isinstance(value, hint) else hint.from_dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint in (int, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            kind = {int: "a whole number", str: "a string", bool: "true or false"}[hint]
            raise ConfigError(f"{where} must be {kind}, got {value!r}")
        return value
    return value
