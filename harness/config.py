"""Reading TOML configuration into strict pydantic models, with errors a user can act on.

A typo'd key names the file, the key path and the closest valid key; a TOML syntax error names the
line. Used by goldset manifests and ladder files alike.
"""

from __future__ import annotations

import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import ConfigError, did_you_mean


def read_toml(path: Path, error: type[Exception] = ConfigError) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise error(f"{path}: file not found") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: invalid TOML: {exc}") from exc


def validate(model: type[BaseModel], data: dict[str, Any], where: str, error: type[Exception] = ConfigError) -> BaseModel:
    """``model.model_validate(data)``, or one line naming ``where``, the key path and the fix."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{where}: {describe(exc, model, data)}") from exc


def describe(exc: ValidationError, model: type[BaseModel], data: Any = None) -> str:
    """The first error as one line: the key path (``rungs[2] ('hybrid').inputs``, with the names of
    the entries ``data`` gives), what is wrong and, for a name, the valid ones with the closest."""
    first = exc.errors()[0]
    loc = list(first["loc"])
    owner, path = _owner(model, loc[:-1])
    parts = path + [loc[-1]] if loc else path
    key, entry = _path(parts), _entry(parts, data)
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden" and owner is not None:
        fields = list(owner.model_fields)
        return f"unknown key '{key}'{entry}.{did_you_mean(str(loc[-1]), fields)} (valid keys here: {', '.join(fields)})"
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return _tag_problem(first, key, entry, _tags(model, loc))
    return f"key '{key}'{entry}: {msg}" if key else msg


def _tag_problem(error: dict, key: str, entry: str, tags: list[str]) -> str:
    """An unknown or missing discriminator (a rung's ``kind``), with the valid ones and the closest."""
    field = error["ctx"]["discriminator"].strip("'")
    if error["type"] == "union_tag_not_found":
        return f"key '{key}'{entry}: no {field}; add {field} = one of {', '.join(tags)}"
    tag = str(error["ctx"]["tag"])
    return f"key '{key}.{field}'{entry}: unknown {field} '{tag}'.{did_you_mean(tag, tags)} (valid: {', '.join(tags)})"


def _tags(model: type[BaseModel], loc: list) -> list[str]:
    """The ``kind`` values of the tagged union at ``loc``."""
    current: Any = model
    for part in loc:
        current = _item_type(current) if isinstance(part, int) else _unwrap(current).model_fields[part].annotation
    return [str(m.model_fields["kind"].default) for m in typing.get_args(_unwrap(current)) if "kind" in getattr(m, "model_fields", {})]


def _owner(model: type[BaseModel], loc: list) -> tuple[type[BaseModel] | None, list]:
    """Walk ``loc`` from ``model`` to the model that holds the last key; drop union tags from the path."""
    current: Any = model
    path: list = []
    for part in loc:
        if isinstance(part, int):
            path.append(part)
            current = _item_type(current)
            continue
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            path.append(part)
            current = current.model_fields[part].annotation
            continue
        if typing.get_origin(_unwrap(current)) is dict:  # a table of user-named entries
            path.append(part)
            current = _item_type(current)
            continue
        member = _union_member(current, part)  # a discriminated union's tag, not a key the user wrote
        if member is None:
            path.append(part)
        current = member
    current = _unwrap(current)
    return (current if isinstance(current, type) and issubclass(current, BaseModel) else None), path


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(models[0]) if len(models) == 1 else annotation
    return annotation


def _item_type(annotation: Any) -> Any:
    args = typing.get_args(_unwrap(annotation))
    return args[-1] if args else None


def _union_member(annotation: Any, tag: str) -> Any:
    for member in typing.get_args(_unwrap(annotation)):
        field = getattr(member, "model_fields", {}).get("kind")
        if field is not None and field.default == tag:
            return member
    return None


def _path(parts: list) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _entry(parts: list, data: Any) -> str:
    """`` (rung 'hybrid')``: the innermost entry on the path that has a ``name`` in ``data``, or ``""``."""
    found, key = "", ""
    for part in parts:
        if isinstance(part, int):
            data = data[part] if isinstance(data, list) and -len(data) <= part < len(data) else None
            if isinstance(data, dict) and isinstance(data.get("name"), str):
                found = f" ({key.removesuffix('s')} '{data['name']}')"
        else:
            key, data = str(part), (data.get(part) if isinstance(data, dict) else None)
    return found


class StrictModel(BaseModel):
    """The base of every configuration table: an unknown key is an error, never ignored."""

    model_config = ConfigDict(extra="forbid")
