"""The machinery under the settings structure (:mod:`hub_extensions.settings`): fields that carry their documentation
and JSON-schema constraints, the JSON schema of a settings class (what the chart's ``values.schema.json`` holds for
``custom.ds``), schema errors worded as one line that names the key as Helm users write it, and the conversions
between the camelCase values and the typed settings.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import field
from typing import Any

VALUES_PATH = "jupyterhub.custom.ds"


class SettingsError(ValueError):
    """A setting is wrong. The message is one line that names the key and what it expects."""


def setting(default: Any, doc: str, required: bool = False, upstream: str | None = None, **schema: Any) -> Any:
    """A dataclass field carrying its documentation, whether users must set it, and JSON-schema constraints.

    ``upstream`` names the environment variable of the Docker-based upstream project this setting replaces
    (shown on the settings page; not part of the JSON schema).
    """
    meta = {"doc": doc, "schema": schema, "required": required, "upstream": upstream}
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: _copy(default), metadata=meta)
    return field(default=default, metadata=meta)


def _copy(value: Any) -> Any:
    # Items are frozen dataclasses or strings, so a shallow copy keeps defaults unshared.
    if isinstance(value, list):
        return list(value)
    return dict(value) if isinstance(value, dict) else value


def camel(name: str) -> str:
    """A settings field name as Helm users write it (``mount_path`` -> ``mountPath``)."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


# ---------------------------------------------------------------- parsing and validation

def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "boolean": "true or false", "number": "a number", "null": "null"}


def _key_path(parts: typing.Iterable[Any]) -> str:
    out = VALUES_PATH
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _expected(error: Any) -> str:
    """What the failed JSON-schema keyword asks for, in words."""
    keyword, value, schema = error.validator, error.validator_value, error.schema
    if keyword == "type":
        return " or ".join(_TYPE_WORDS.get(t, t) for t in (value if isinstance(value, list) else [value]))
    if keyword == "enum":
        return "one of " + ", ".join(json.dumps(v) for v in value)
    if keyword == "not" and "anyOf" in value:  # only volume names use it: reserved names and prefixes
        names = [v for part in value["anyOf"] for v in part.get("enum", [])]
        prefixes = [part["pattern"].lstrip("^") for part in value["anyOf"] if "pattern" in part]
        return (f"a name other than {', '.join(json.dumps(v) for v in names)} and not starting with "
                f"{', '.join(json.dumps(p) for p in prefixes)} (reserved: a volume's pod volume is ds-<name>, and "
                + ", ".join([*(f"ds-{v}" for v in names), *(f"ds-{p}*" for p in prefixes)]) + " are taken)")
    if keyword == "pattern":
        return f"a string matching {value}"
    if keyword in ("minLength", "maxLength"):
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        return f"a string of {low}-{high} characters" if high else "a non-empty string"
    if keyword in ("minimum", "maximum"):
        return f"an integer from {schema.get('minimum')} to {schema.get('maximum')}"
    if keyword == "minItems":
        return f"at least {value} item(s)"
    return f"a value valid for {keyword} {json.dumps(value)}"


def one_line(error: Any) -> str:
    """A jsonschema error as one line that names the key the way Helm users write it."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"{_key_path([*path, unknown[0]])}: unknown setting (allowed: {', '.join(allowed)})"
    if error.validator == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        doc = error.schema["properties"][missing].get("description", "")
        return f"{_key_path([*path, missing])}: required ({doc})"
    return f"{_key_path(path)}: expected {_expected(error)}, got {json.dumps(error.instance, default=str)}"


def _convert(tp: Any, value: Any) -> Any:
    """A schema-valid JSON value as the field's Python type."""
    origin = typing.get_origin(tp)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if dataclasses.is_dataclass(tp):
        return build(tp, value)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        return [_convert(item_tp, v) for v in value]
    if origin is dict:
        return dict(value)
    if tp is int:
        return int(value)  # JSON schema counts 2.0 as an integer
    return value


def build(cls: type, raw: Mapping[str, Any]) -> Any:
    hints = _hints(cls)
    return cls(**{f.name: _convert(hints[f.name], raw[camel(f.name)])
                  for f in dataclasses.fields(cls) if camel(f.name) in raw})


# ---------------------------------------------------------------- JSON schema for the chart

def _schema_for(tp: Any, extra: Mapping[str, Any], default: Any = dataclasses.MISSING) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        schema = _schema_for(inner[0], extra)
        if isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
        return schema
    if dataclasses.is_dataclass(tp):
        return dataclass_schema(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        item = _schema_for(item_tp, extra.get("items", {}))
        rest = {k: v for k, v in extra.items() if k != "items"}
        return {"type": "array", "items": item, **rest}
    if origin is dict:
        return {"type": "object", "additionalProperties": {"type": "string"}, **extra}
    name = {str: "string", bool: "boolean", int: "integer", float: "number"}[tp]
    return {"type": name, **extra}


def dataclass_schema(cls: type) -> dict[str, Any]:
    """JSON schema (draft-07) of a settings class: strict, documented."""
    hints = _hints(cls)
    props = {}
    for f in dataclasses.fields(cls):
        sub = _schema_for(hints[f.name], f.metadata["schema"])
        sub["description"] = f.metadata["doc"]
        props[camel(f.name)] = sub
    schema = {"type": "object", "additionalProperties": False, "description": (cls.__doc__ or "").strip(),
              "properties": props}
    required = [camel(f.name) for f in dataclasses.fields(cls) if f.metadata["required"]]
    if required:
        schema["required"] = required
    return schema


def to_values(obj: Any) -> Any:
    """Settings back to the camelCase mapping Helm users write (used for docs and values.example.yaml)."""
    if dataclasses.is_dataclass(obj):
        return {camel(f.name): to_values(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [to_values(v) for v in obj]
    return obj
