"""The reference (Sigfox API v2's published document) as the API tests use it.

- which reference operation a served route is (`reference_operation`);
- whether an answer fits the reference's schema for it (`answer_errors`, JSON Schema Draft 4 through
  `jsonschema`: Swagger 2.0 schemas are Draft 4 with extra keywords that validation ignores), less the
  documented places where Backhaul follows the live service (`LIVE_DIFFERENCES`: values of another
  type at given places; `LIVE_ANSWERS`: operations answering another shape), each mirrored by a bullet
  of the README's "API v2 compatibility" section;
- the reference's own example requests for an operation (`example_body`, `example_queries`).

Routes the reference does not have (Backhaul's extensions) are checked against our own document.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft4Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from oss.openapi import document

REFERENCE_FILE = Path(__file__).parent / "reference" / "sigfox-api-v2-openapi.json"
README = Path(__file__).parent.parent / "README.md"
REFERENCE_URI, OURS_URI = "urn:sigfox-api-v2", "urn:backhaul-api"
README_SECTION = "## API v2 compatibility"
DECIMAL_STRING = re.compile(r"-?[0-9]+\.[0-9]{2}")


@functools.lru_cache(maxsize=1)
def reference() -> dict[str, Any]:
    return orjson.loads(REFERENCE_FILE.read_bytes())


@functools.lru_cache(maxsize=1)
def _registry() -> Registry:
    return Registry().with_resources([
        (REFERENCE_URI, Resource.from_contents(reference(), default_specification=DRAFT4)),
        (OURS_URI, Resource.from_contents(document(), default_specification=DRAFT4)),
    ])


def template(path: str) -> str:
    """A path with its parameters' names left out (`/devices/{}`), to match ours with the reference's."""
    return re.sub(r"\{[^}]*\}", "{}", path)


@functools.lru_cache(maxsize=1)
def _reference_paths() -> dict[str, str]:
    return {template(p): p for p in reference()["paths"]}


def reference_path(method: str, route: str) -> str | None:
    """The reference's path of a served route (`/v2/...`, a slash-less alias meaning its collection), or None."""
    path = route.removeprefix("/v2")
    paths = _reference_paths()
    for candidate in (path, path + "/"):
        found = paths.get(template(candidate))
        if found is not None and method.lower() in reference()["paths"][found]:
            return found
    return None


def reference_operation(method: str, route: str) -> dict[str, Any] | None:
    path = reference_path(method, route)
    return reference()["paths"][path][method.lower()] if path else None


def our_path(route: str) -> str:
    """Our document's path of a served route."""
    path = route.removeprefix("/v2")
    paths = document()["paths"]
    return path if path in paths else path + "/"


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class Difference:
    """A documented place where Backhaul follows the live service rather than the published schema:
    an error of the reference's schema is allowed at instance paths matching `at` (slash-joined),
    when the value passes `value`. `readme` is the text the README's bullet for it holds."""

    at: re.Pattern[str]
    value: Callable[[Any], bool]
    readme: str

    def allows(self, error: ValidationError) -> bool:
        where = "/".join(str(p) for p in error.absolute_path)
        return bool(self.at.search(where)) and self.value(error.instance)


def decimal_string(value: Any) -> bool:
    return isinstance(value, str) and DECIMAL_STRING.fullmatch(value) is not None


CONSUMPTION_ID = re.compile(r"[0-9A-Fa-f]{1,8}_[0-9]{4}(_[0-9]{1,2})?")


# The allow-list: every difference the conformance test accepts, each a bullet of the README.
LIVE_DIFFERENCES = (
    Difference(re.compile(r"(^|/)rinfos/[0-9]+/(rssi|snr|lat|lng)$"), decimal_string,
               "`rinfos[].rssi`, `snr`, `lat` and `lng` are decimal strings"),
    # Only a consumption's id has this form (device id, year, month): an integer id anywhere else stays refused.
    Difference(re.compile(r"^id$"), lambda v: isinstance(v, str) and CONSUMPTION_ID.fullmatch(v) is not None,
               "`deviceConsumption.id` (`/devices/{id}/consumption/{year}[/{month}]`) is a"),
)


@dataclass(frozen=True)
class Answered:
    """A documented operation whose answer follows the live service's shape rather than the document's
    schema: it is validated against `schema` (written with the reference's definitions) instead."""

    schema: dict[str, Any]
    readme: str


def _listing(definition: str) -> dict[str, Any]:
    return {"type": "object", "required": ["data", "paging"], "properties": {
        "data": {"type": "array", "items": {"$ref": f"{REFERENCE_URI}#/definitions/{definition}"}},
        "paging": {"$ref": f"{REFERENCE_URI}#/definitions/paging"}}}


# The rest of the allow-list: (method, reference path, status) -> the shape it is held to instead.
LIVE_ANSWERS = {
    ("GET", "/device-types/{id}/callbacks/{callbackId}/callbacks-not-delivered", 200): Answered(
        _listing("errorMessages"), "`GET /device-types/{id}/callbacks/{callbackId}/callbacks-not-delivered` "
                                   "answers a list"),
}


def allowed_differences() -> list[str]:
    """The README text of every entry of the allow-list."""
    return [d.readme for d in LIVE_DIFFERENCES] + [a.readme for a in LIVE_ANSWERS.values()]


@dataclass(frozen=True)
class Misfit:
    """An answer that does not fit: where in it, what the schema says, and the value."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where or '(the body)'}: {self.message}"


def _fits(schema: dict[str, Any], body: Any) -> list[ValidationError]:
    return list(Draft4Validator(schema, registry=_registry()).iter_errors(body))


def answer_errors(method: str, route: str, status: int, body: Any) -> tuple[str, list[Misfit]]:
    """Which document judged the answer (`reference`, or `ours` for an extension) and where it does not fit.

    The status must be one the operation declares; a declared schema must validate the body (the
    reference's errors that a `LIVE_DIFFERENCES` entry allows aside, or the shape `LIVE_ANSWERS` holds it
    to instead); a status without a schema must come without a body, unless the operation answers a file
    (a PNG tile, a KMZ: another content type than JSON), which must then come with one."""
    path = reference_path(method, route)
    if path is not None:
        uri, parts, judge = REFERENCE_URI, ("paths", path, method.lower(), "responses", str(status)), "reference"
        operation = reference()["paths"][path][method.lower()]
        declared = operation["responses"].get(str(status))
        schema_parts = (*parts, "schema") if declared and "schema" in declared else None
        # A file (the KMZ export: `produces` another type than JSON) is a body without a JSON schema.
        binary = any(kind != "application/json" for kind in operation.get("produces", ()))
    else:
        path = our_path(route)
        uri, parts, judge = OURS_URI, ("paths", path, method.lower(), "responses", str(status)), "ours"
        declared = document()["paths"][path][method.lower()]["responses"].get(str(status))
        has_schema = bool(declared and declared.get("content", {}).get("application/json", {}).get("schema"))
        schema_parts = (*parts, "content", "application/json", "schema") if has_schema else None
        binary = any(kind != "application/json" for kind in (declared or {}).get("content", {}))
    if declared is None:
        return judge, [Misfit("status", f"{status} is not a status the operation answers ({judge} document)")]
    if schema_parts is None:
        if binary and isinstance(body, bytes) and body:
            return judge, []
        return judge, [] if body in (None, b"", "") else [Misfit("body", "the operation answers no body here")]
    instead = LIVE_ANSWERS.get((method, path, status)) if judge == "reference" else None
    schema = instead.schema if instead else {"$ref": f"{uri}{_pointer(*schema_parts)}"}
    misfits = []
    for error in _fits(schema, body):
        if judge == "reference" and any(d.allows(error) for d in LIVE_DIFFERENCES):
            continue
        where = "/".join(str(p) for p in error.absolute_path)
        misfits.append(Misfit(where, f"{error.message} (schema: {'/'.join(map(str, error.schema_path))})"))
    return judge, misfits


def readme_section() -> str:
    """The README's "API v2 compatibility" section."""
    text = README.read_text()
    start = text.index(README_SECTION)
    end = text.find("\n## ", start + len(README_SECTION))
    return text[start:end if end >= 0 else None]


# Example requests -------------------------------------------------------------------------------------

def _definition(ref: str) -> dict[str, Any]:
    return reference()["definitions"][ref.rsplit("/", 1)[1]]


def _subtypes(name: str) -> list[str]:
    """Definitions built on `name` (`allOf` naming it): the concrete kinds of a discriminated schema."""
    ref = f"#/definitions/{name}"
    return [n for n, d in reference()["definitions"].items() if any(p.get("$ref") == ref for p in d.get("allOf", ()))]


def example_of(schema: dict[str, Any], depth: int = 0, *, part: bool = False) -> Any:
    """The example the reference gives for a schema: its own `example`, else one made of its parts'
    (`allOf` parts merged; an object's properties that have one; an array of its item's), else None.
    A discriminated schema without an example of its own takes its first concrete kind's (a callback:
    a URL callback's), unless it is being read as a part of that kind (`part`)."""
    if depth > 10:
        return None
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        target = _definition(schema["$ref"])
        if "discriminator" in target and "example" not in target and _subtypes(name) and not part:
            return example_of({"$ref": f"#/definitions/{_subtypes(name)[0]}"}, depth + 1)
        return example_of(target, depth + 1)
    if "example" in schema:
        return schema["example"]
    if schema.get("type") == "array" and "items" in schema:
        item = example_of(schema["items"], depth + 1)
        return None if item is None else [item]
    out: dict[str, Any] = {}
    for piece in schema.get("allOf", ()):
        part_example = example_of(piece, depth + 1, part=True)
        if isinstance(part_example, dict):
            out.update(part_example)
    for name, sub in schema.get("properties", {}).items():
        value = example_of(sub, depth + 1)
        if value is not None:
            out.setdefault(name, value)
    return out or None


def example_body(operation: dict[str, Any]) -> Any:
    """The example body of an operation (None when it takes none or the reference gives none)."""
    for parameter in operation.get("parameters", ()):
        if parameter.get("in") == "body":
            return example_of(parameter["schema"])
    return None


def takes_body(operation: dict[str, Any]) -> bool:
    return any(p.get("in") == "body" for p in operation.get("parameters", ()))


def _text(value: Any) -> str:
    return orjson.dumps(value).decode() if isinstance(value, bool) else str(value)


def example_queries(operation: dict[str, Any]) -> Iterator[dict[str, str]]:
    """The query strings of the reference's examples for an operation: every parameter with an
    example or a default at that value, and then each value of each enumerated parameter in turn."""
    base: dict[str, str] = {}
    enumerated: list[tuple[str, list[Any]]] = []
    for parameter in operation.get("parameters", ()):
        if parameter.get("in") != "query":
            continue
        name = parameter["name"]
        for key in ("example", "x-example", "default"):
            if key in parameter:
                base[name] = _text(parameter[key])
                break
        if parameter.get("enum"):
            enumerated.append((name, parameter["enum"]))
    yield base
    for name, values in enumerated:
        for value in values:
            yield {**base, name: _text(value)}
