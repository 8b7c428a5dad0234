"""Stage configuration: dataclasses -> YAML presets -> CLI flags, strictly checked.

Every stage has one dataclass whose fields each carry a default and a one-line doc (``field(..., metadata=
{"help": ...})``, written with :func:`F`).  A config is resolved in this order, later winning:

1. the dataclass defaults;
2. a preset, ``--preset NAME`` -> ``mimo/configs/NAME.yaml`` (``configs/`` at the repo root links there);
3. a YAML file, ``--config FILE``;
4. CLI flags generated from the fields: ``--lr 3e-4``, nested ``--model.hidden_size 128``.

A preset/config YAML holds one top-level section per stage (``pretrain:``, ``sft:``, ``rl:``, ...) plus shared
sections (``model:``) that fill the stage's field of the same name.  Unknown sections or keys, wrong types and
unknown presets raise :class:`~mimo.errors.ConfigError` naming the field -- never silently ignored.  The resolved
config is saved beside every checkpoint (:func:`save_yaml`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mimo.domains import check_value
from mimo.errors import ConfigError

T = TypeVar("T")

# Top-level YAML sections a preset may hold.  Shared sections fill a stage field of the same name.
SHARED_SECTIONS = ("model",)
KNOWN_SECTIONS = frozenset(
    {"model", "data", "pretrain", "sft", "rl", "mtp", "eval", "demo", "rewards", "judge", "infer", "chat", "serve",
     "curate"}
)


def F(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = None) -> Any:  # noqa: A002
    """A dataclass field with a one-line doc.  Use ``factory=`` for mutable defaults."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def presets_dir() -> Path:
    return Path(__file__).resolve().parent / "configs"


def list_presets() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = presets_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r} (available: {', '.join(list_presets())})")
    return path


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping; a missing file or a non-mapping document is a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    unknown = sorted(set(data) - KNOWN_SECTIONS)
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r} (known: {', '.join(sorted(KNOWN_SECTIONS))})")
    return data


def yaml_lines(path: str | Path) -> dict[str, int]:
    """Dotted key -> 1-based line of every mapping key in a YAML file (so errors can name the line)."""
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    out: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = f"{prefix}{key.value}"
                out[name] = key.start_mark.line + 1
                walk(value, name + ".")

    walk(root, "")
    return out


def _labels(path: str | Path, section: str, where: str) -> dict[str, str]:
    """Error labels ``FILE:LINE: section.key`` for the keys of ``section`` (and of the shared sections)."""
    labels = {}
    for key, line in yaml_lines(path).items():
        if key.startswith(section + "."):
            labels[f"{where}.{key[len(section) + 1:]}"] = f"{path}:{line}: {key}"
        elif key.split(".")[0] in SHARED_SECTIONS:
            labels[f"{where}.{key}"] = f"{path}:{line}: {key}"
    return labels


def save_yaml(path: str | Path, cfg: Any) -> None:
    """Write a resolved config (dataclass or dict) as YAML."""
    from mimo.utils.io import atomic_open

    data = to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    with atomic_open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False)


# ----------------------------------------------------------------------------------------------- conversion


def to_dict(cfg: Any) -> dict:
    """A dataclass (nested) as plain dicts/lists."""
    return dataclasses.asdict(cfg)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (converting int->float, lists->tuples); raise naming ``where``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(repr(a) for a in typing.get_args(tp))
            raise ConfigError(f"{where}: expected one of {choices}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        args = typing.get_args(tp)
        if args:
            return {k: _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(
    cls: type[T], data: dict, where: str = "config", base: T | None = None, labels: dict[str, str] | None = None
) -> T:
    """Build ``cls`` from a mapping, strictly: unknown keys, wrong types and values outside the field's domain
    (:mod:`mimo.domains`) raise ConfigError naming the key.

    With ``base``, fields absent from ``data`` keep ``base``'s values (nested dataclasses merge recursively).
    ``labels`` maps a key's path to the name errors use for it (``FILE:LINE: section.key`` for YAML).
    """
    labels = labels or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in hints:
            where_key = f"{where}{key}" if where.endswith(("-", ".")) else f"{where}.{key}"
            raise ConfigError(f"{where_key}: unknown key (known: {', '.join(names)})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        sub = f"{where}{f.name}" if where.endswith(("-", ".")) else f"{where}.{f.name}"
        tp = hints[f.name]
        current = getattr(base, f.name) if base is not None else None
        if f.name in data:
            value = data[f.name]
            if dataclasses.is_dataclass(tp) and isinstance(value, dict):
                kwargs[f.name] = from_dict(tp, value, sub, base=current, labels=labels)
            else:
                label = labels.get(sub, sub)
                kwargs[f.name] = _coerce(value, tp, label)
                check_value(cls, f, kwargs[f.name], label)
        elif base is not None:
            kwargs[f.name] = current
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field without a default
        raise ConfigError(f"{where}: {e}") from None


def replace(cfg: T, **changes: Any) -> T:
    """``dataclasses.replace`` with type checking of the new values."""
    return from_dict(type(cfg), changes, type(cfg).__name__, base=cfg)


# ------------------------------------------------------------------------------------------------------ CLI


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _parse_cli_value(text: str, tp: Any, flag: str) -> Any:
    """Parse a CLI string into the field's type (YAML syntax for lists/mappings: ``[1,2]``, ``{a: 1}``)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if text.lower() in ("none", "null") and len(args) < len(typing.get_args(tp)):
            return None
        if len(args) == 1:
            return _parse_cli_value(text, args[0], flag)
    if tp is bool:
        if text.lower() not in _BOOL_WORDS:
            raise ConfigError(f"{flag}: expected true or false, got {text!r}")
        return _BOOL_WORDS[text.lower()]
    if tp is str or origin is typing.Literal and all(isinstance(a, str) for a in typing.get_args(tp)):
        return text
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{flag}: expected an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{flag}: expected a number, got {text!r}") from None
    if origin in (list, tuple) and not text.lstrip().startswith("["):
        text = "[" + text + "]"  # comma-separated shorthand: --stages 1,2,3
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{flag}: cannot parse {text!r}") from None


def _walk_fields(cls: type, prefix: str = ""):
    """Yield (dotted name, type, help, default) for every leaf field, recursing into nested dataclasses."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        name = prefix + f.name
        if dataclasses.is_dataclass(tp):
            yield from _walk_fields(tp, name + ".")
        else:
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = f.default_factory()  # type: ignore[misc]
            else:
                default = None
            yield name, tp, f.metadata.get("help", ""), default


def add_config_args(parser: argparse.ArgumentParser, cls: type, section: str | None = None) -> None:
    """Add ``--preset``, ``--config`` and one flag per (nested) field of ``cls``; values stay strings until
    :func:`resolve_config` parses them against the field types."""
    parser.add_argument("--preset", default=None, help=f"preset name ({', '.join(list_presets()) or 'none'})")
    parser.add_argument("--config", default=None, metavar="FILE", help="YAML config file (sections per stage)")
    group = parser.add_argument_group(f"{section or cls.__name__} options")
    for name, tp, help_, default in _walk_fields(cls):
        if isinstance(default, (list, dict, tuple)):
            shown = json.dumps(default,
                               default=lambda o: dataclasses.asdict(o) if dataclasses.is_dataclass(o) else str(o))
        else:
            shown = default
        text = f"{help_} (default: {shown})".replace("%", "%%")  # argparse %-formats help strings
        is_bool = tp is bool or (typing.get_origin(tp) in (typing.Union, types.UnionType)
                                 and bool in typing.get_args(tp))
        group.add_argument(
            f"--{name}",
            dest=f"cfg:{name}",
            default=None,
            nargs="?" if is_bool else None,
            const="true" if is_bool else None,  # a bare boolean flag (`--quick`) means true
            metavar=_type_name(tp).upper() if isinstance(tp, type) else "VALUE",
            help=text,
        )


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        data = data.setdefault(p, {})
    data[parts[-1]] = value


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def section_from_yaml(cls: type, section: str, data: dict) -> dict:
    """The mapping for ``section`` of a preset/config YAML, with shared sections folded into matching fields."""
    out = data
    for part in section.split("."):  # a dotted section ("data.mix") is a sub-mapping of a section
        out = (out.get(part) if isinstance(out, dict) else None) or {}
    if not isinstance(out, dict):
        raise ConfigError(f"section {section!r}: expected a mapping, got {out!r}")
    hints = _hints(cls)
    # only a nested-config field takes a shared section (`mimo eval --model DIR` has a string field of that name)
    nested = {f.name for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}
    for shared in SHARED_SECTIONS:
        if shared in nested and shared != section and isinstance(data.get(shared), dict):
            out = dict(out)
            out[shared] = _deep_merge(data[shared], out.get(shared) or {})
    return out


def resolve_config(
    cls: type[T],
    section: str,
    preset: str | None = None,
    config_file: str | None = None,
    overrides: dict[str, str] | None = None,
) -> T:
    """Defaults <- preset <- config file <- dotted CLI overrides (strings parsed against the field types)."""
    cfg = cls()
    if preset:
        path = preset_path(preset)
        where = f"{path.name}:{section}"
        cfg = from_dict(cls, section_from_yaml(cls, section, load_yaml(path)), where, base=cfg,
                        labels=_labels(path, section, where))
    if config_file:
        where = f"{config_file}:{section}"
        cfg = from_dict(cls, section_from_yaml(cls, section, load_yaml(config_file)), where, base=cfg,
                        labels=_labels(config_file, section, where))
    if overrides:
        types_by_name = {name: tp for name, tp, _, _ in _walk_fields(cls)}
        data: dict = {}
        for name, text in overrides.items():
            if name not in types_by_name:
                raise ConfigError(f"--{name}: unknown option")
            _set_dotted(data, name, _parse_cli_value(text, types_by_name[name], f"--{name}"))
        cfg = from_dict(cls, data, "--", base=cfg)
    return cfg


def config_from_args(cls: type[T], section: str, args: argparse.Namespace) -> T:
    """Resolve the config of a parser built with :func:`add_config_args`."""
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg:") and v is not None}
    return resolve_config(cls, section, args.preset, args.config, overrides)


def stage_cli(argv: list[str], *, prog: str, description: str, cls: type[T], section: str, main) -> int:
    """The standard stage command: ``--preset``/``--config``/field flags -> resolved config -> ``main(cfg)``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_config_args(parser, cls, section)
    args = parser.parse_args(argv)
    cfg = config_from_args(cls, section, args)
    rc = main(cfg)
    return rc if isinstance(rc, int) else 0
