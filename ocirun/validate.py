"""`ocirun validate`: full check of a bundle's config.json.

Two layers: our JSON Schema (ocirun/schema/config.schema.json) for shapes, types, enums and ranges, and the
semantic checks below for rules that span fields or read better as prose (semver, absolute paths, id
mappings vs. the user namespace, ...). Every problem becomes one line ``config.json: <json.path>: <why>``
so a user can fix a config in one pass instead of one error per run.

This module imports json and jsonschema (slow); it is only for `ocirun validate` and the tests, never for
create/start (see docs/design.md, hot-path rules).
"""

import json
import os
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import jsonschema

from ocirun.config import HOOK_KINDS

Path = tuple[str | int, ...]
Issue = tuple[Path, str]

PREFIX = "config.json"
# semver.org's recommended SemVer 2.0.0 pattern.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


# ---------------------------------------------------------------- formatting


def format_path(path: Path) -> str:
    """Render a JSON path the way the runtime's errors do: ``linux.namespaces[2].type``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}" if out else part
        else:  # annotation / sysctl keys such as "net.ipv4.ip_forward"
            out += f"[{json.dumps(part)}]"
    return out or "(top level)"


def _render(issues: list[Issue]) -> list[str]:
    """Sort by path (array indices numerically), drop duplicates, and prefix with the file name."""

    def key(issue: Issue) -> tuple[Any, ...]:
        path, message = issue
        return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in path), message

    seen: set[str] = set()
    lines = []
    for path, message in sorted(issues, key=key):
        line = f"{PREFIX}: {format_path(path)}: {message}"
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


def _show(value: Any) -> str:
    """A value as JSON, cut short so every message stays one readable line."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: Any) -> str:
    if isinstance(value, bool | str | list | dict) or value is None:
        return _JSON_TYPES[type(value)]
    return "integer" if isinstance(value, int) else "number"


# ---------------------------------------------------------------- schema layer


@lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    """Load and compile our schema once per process."""
    # A path beside this file, not importlib.resources: the launcher's bundle loader serves no resources.
    with open(os.path.join(os.path.dirname(__file__), "schema", "config.schema.json"), encoding="utf-8") as f:
        text = f.read()
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _describe(error: jsonschema.ValidationError) -> str:
    """Turn one jsonschema error into a short, path-less sentence."""
    kind, want, got, schema = error.validator, error.validator_value, error.instance, error.schema
    if kind == "type":
        wanted = " or ".join(want) if isinstance(want, list) else want
        return f"must be {'an' if wanted[0] in 'aeiou' else 'a'} {wanted}, got {_json_type(got)} {_show(got)}"
    if kind == "enum":
        return f"invalid value {_show(got)}: must be one of {', '.join(map(str, want))}"
    if kind in ("minimum", "maximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        bounds = f"between {low} and {high}" if low is not None and high is not None else (
            f">= {low}" if kind == "minimum" else f"<= {high}")
        title = f" ({schema['title']})" if "title" in schema else ""
        return f"{got} is out of range: must be {bounds}{title}"
    if kind == "pattern":
        hint = f" ({schema['description']})" if "description" in schema else ""
        return f"invalid value {_show(got)}: must match {want}{hint}"
    if kind in ("minItems", "minLength", "minProperties") and want == 1:
        return "must not be empty"
    if kind == "anyOf" and all(set(sub) == {"required"} for sub in want):
        names = [name for sub in want for name in sub["required"]]
        return f"must set at least one of {', '.join(names)}"
    return error.message


def _schema_issues(config: Any) -> Iterator[Issue]:
    """Every schema violation, with `required` reported at the missing member's own path."""
    for error in _validator().iter_errors(config):
        path: Path = tuple(error.absolute_path)
        if error.validator == "required":
            # Reported at the parent, once per missing member; _render() drops the repeats this makes.
            for name in error.validator_value:
                if isinstance(error.instance, dict) and name not in error.instance:
                    yield (*path, name), "is required"
            continue
        if "propertyNames" in error.relative_schema_path:
            why = _describe(error).removeprefix(f"invalid value {_show(error.instance)}: ")
            yield path, f"invalid key {_show(error.instance)}: {why}"
            continue
        yield path, _describe(error)


# ---------------------------------------------------------------- semantic layer


def _dict(value: Any) -> dict[str, Any]:
    """The value if it is an object, else {} (the schema layer already reported its type)."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _absolute(path: Path, value: Any, what: str = "path") -> Iterator[Issue]:
    if isinstance(value, str) and value and not value.startswith("/"):
        yield path, f"must be an absolute {what}, got {_show(value)}"


def _check_version(config: dict[str, Any]) -> Iterator[Issue]:
    version = config.get("ociVersion")
    if not isinstance(version, str):
        return
    match = _SEMVER.match(version)
    if not match:
        yield ("ociVersion",), f"{_show(version)} is not a SemVer 2.0.0 version (e.g. \"1.2.0\")"
    elif match.group(1) != "1":
        major = match.group(1)
        yield ("ociVersion",), f"unsupported major version {major}: ocirun implements runtime-spec 1.x"


def _check_process(config: dict[str, Any]) -> Iterator[Issue]:
    process = _dict(config.get("process"))
    args = process.get("args")
    if isinstance(args, list) and not args:
        yield ("process", "args"), "must contain at least one entry (the program to run)"
    yield from _absolute(("process", "cwd"), process.get("cwd"))
    first: dict[str, int] = {}
    for i, rlimit in enumerate(_list(process.get("rlimits"))):
        kind = _dict(rlimit).get("type")
        if not isinstance(kind, str):
            continue
        if kind in first:
            yield ("process", "rlimits", i, "type"), (
                f"duplicate rlimit {_show(kind)} (first at process.rlimits[{first[kind]}])")
        else:
            first[kind] = i


def _check_mounts(config: dict[str, Any]) -> Iterator[Issue]:
    for i, mount in enumerate(_list(config.get("mounts"))):
        mount = _dict(mount)
        dest = mount.get("destination")
        if isinstance(dest, str) and dest and not dest.startswith("/"):
            yield ("mounts", i, "destination"), (
                f"must be an absolute path, got {_show(dest)} (relative destinations are deprecated)")
        for have, need in (("uidMappings", "gidMappings"), ("gidMappings", "uidMappings")):
            if have in mount and need not in mount:
                yield ("mounts", i, need), f"is required when {have} is set"


def _check_hooks(config: dict[str, Any]) -> Iterator[Issue]:
    hooks = _dict(config.get("hooks"))
    for kind in HOOK_KINDS:
        for i, hook in enumerate(_list(hooks.get(kind))):
            yield from _absolute(("hooks", kind, i, "path"), _dict(hook).get("path"))


def _check_namespaces(linux: dict[str, Any]) -> Iterator[Issue]:
    first: dict[str, int] = {}
    new_userns = userns = False
    for i, ns in enumerate(_list(linux.get("namespaces"))):
        ns = _dict(ns)
        kind, path = ns.get("type"), ns.get("path")
        yield from _absolute(("linux", "namespaces", i, "path"), path)
        if not isinstance(kind, str):
            continue
        if kind in first:
            yield ("linux", "namespaces", i, "type"), (
                f"namespace {_show(kind)} repeated (first at linux.namespaces[{first[kind]}])")
            continue
        first[kind] = i
        if kind == "user":
            userns = True
            new_userns = not path
    for name in ("uidMappings", "gidMappings"):
        present = bool(_list(linux.get(name)))
        if present and not userns:
            yield ("linux", name), "is set but linux.namespaces has no user namespace"
        elif new_userns and not present:
            where = f"linux.namespaces[{first['user']}]"
            yield ("linux", name), f"is required by the new user namespace ({where})"


def _check_devices(linux: dict[str, Any]) -> Iterator[Issue]:
    for i, dev in enumerate(_list(linux.get("devices"))):
        dev = _dict(dev)
        yield from _absolute(("linux", "devices", i, "path"), dev.get("path"))
        kind = dev.get("type")
        if kind in ("c", "b", "u"):
            for num in ("major", "minor"):
                if num not in dev:
                    yield ("linux", "devices", i, num), f"is required for device type {_show(kind)}"


def _check_linux(config: dict[str, Any]) -> Iterator[Issue]:
    linux = _dict(config.get("linux"))
    yield from _check_namespaces(linux)
    yield from _check_devices(linux)
    for name in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(_list(linux.get(name))):
            yield from _absolute(("linux", name, i), path)
    seccomp = _dict(linux.get("seccomp"))
    if "listenerMetadata" in seccomp and "listenerPath" not in seccomp:
        yield ("linux", "seccomp", "listenerMetadata"), "must not be set without listenerPath"


def _semantic_issues(config: Any) -> Iterator[Issue]:
    """Rules the schema cannot state (or states badly); each tolerates wrong types the schema reports."""
    if not isinstance(config, dict):
        return
    for check in (_check_version, _check_process, _check_mounts, _check_hooks, _check_linux):
        yield from check(config)


# ---------------------------------------------------------------- public API


def _config_issues(config: Any) -> list[Issue]:
    return [*_schema_issues(config), *_semantic_issues(config)]


def validate_config(config: dict[str, Any]) -> list[str]:
    """Every problem in a parsed config.json as ``config.json: <json.path>: <message>``, sorted by path."""
    return _render(_config_issues(config))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def validate_bundle(bundle: str) -> list[str]:
    """Validate ``<bundle>/config.json`` and that root.path (absolute or bundle-relative) is a directory."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return [f"{PREFIX}: not found in bundle {bundle}"]
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        return [f"{PREFIX}: cannot read {path}: {reason}"]
    try:
        config = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        return [f"{PREFIX}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"]
    except ValueError as e:  # NaN / Infinity, which Go's encoding/json (and so runc) rejects
        return [f"{PREFIX}: invalid JSON: {e}"]
    issues = _config_issues(config)
    root = _dict(_dict(config).get("root")).get("path")
    if isinstance(root, str) and root:
        full = os.path.join(bundle, root)  # join() keeps an absolute root as is
        where = "" if os.path.isabs(root) else f" (looked at {full})"
        if not os.path.exists(full):
            issues.append((("root", "path"), f"{json.dumps(root)} does not exist{where}"))
        elif not os.path.isdir(full):
            issues.append((("root", "path"), f"{json.dumps(root)} is not a directory{where}"))
    return _render(issues)


def main(bundle: str) -> int:
    """`ocirun validate`: print each problem on stdout; 0 when valid, 1 otherwise."""
    problems = validate_bundle(bundle)
    for line in problems:
        print(line)
    if not problems:
        print(f"ocirun: {PREFIX}: valid")
    return 1 if problems else 0
