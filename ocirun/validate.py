"""`ocirun validate`: full check of a bundle's config.json.

Two layers. Our JSON Schema (ocirun/schema/config.schema.json) reports every fault of shape: types, enums,
ranges, patterns, required members. The semantic rules are the runtime's own: the config model
(ocirun/config.py) runs in collecting mode, with the seccomp section's and the device rules' checks, so
`validate` says what `create` would refuse, in the same words (ocirun/errors.py), and nothing is stated twice.
Where both layers find a fault at the same JSON path the schema's line is kept. The one check of this module's
own is the spec's "ociVersion MUST be SemVer", which the runtime does not enforce (runc does not either).

Every problem becomes one line ``config.json: <json.path>: <why>`` so a user can fix a config in one pass
instead of one error per run; warnings (an unknown capability) are printed too, and do not fail.

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

from ocirun import config as model
from ocirun import jsonio
from ocirun.errors import EMPTY, REQUIRED, OciError, key_path, must_be, out_of_range, show, unknown

Path = tuple[str | int, ...]
Issue = tuple[str, str]  # (JSON path as the runtime writes it, why)

PREFIX = "config.json"
# semver.org's recommended SemVer 2.0.0 pattern.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


# ---------------------------------------------------------------- formatting


def format_path(path: Path) -> str:
    """Render a JSON path the way the runtime's errors do: ``linux.namespaces[2].type``."""
    out = ""
    for part in path:
        out = f"{out}[{part}]" if isinstance(part, int) else key_path(out, part)
    return out or "(top level)"


def _sort_key(path: str) -> list[tuple[int, int, str]]:
    """Sort paths by their parts, array indices numerically."""
    parts = re.findall(r"\[(\d+)\]|\[(\"(?:[^\"\\]|\\.)*\")\]|([^.\[\]]+)", path)
    return [(0, int(i), "") if i else (1, 0, q or name) for i, q, name in parts]


def _render(issues: list[Issue]) -> list[str]:
    """Sort by path, drop duplicates, and prefix with the file name."""
    seen: set[str] = set()
    lines = []
    for path, message in sorted(issues, key=lambda it: (_sort_key(it[0]), it[1])):
        line = f"{PREFIX}: {path}: {message}"
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


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
    """Turn one jsonschema error into a short, path-less sentence, in the runtime's words."""
    kind, want, got, schema = error.validator, error.validator_value, error.instance, error.schema
    if kind == "type":
        return must_be(" or ".join(want) if isinstance(want, list) else want, got)
    if kind == "enum":
        return unknown(got, want)
    if kind in ("minimum", "maximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        return out_of_range(got, low, high, schema.get("title", ""))
    if kind == "pattern":
        hint = f" ({schema['description']})" if "description" in schema else ""
        return f"invalid value {show(got)}: must match {want}{hint}"
    if kind in ("minItems", "minLength", "minProperties") and want == 1:
        return EMPTY
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
                    yield format_path((*path, name)), REQUIRED
            continue
        if "propertyNames" in error.relative_schema_path:
            why = _describe(error).removeprefix(f"invalid value {show(error.instance)}: ")
            yield format_path(path), f"invalid key {show(error.instance)}: {why}"
            continue
        yield format_path(path), _describe(error)


# ---------------------------------------------------------------- semantic layer: the runtime's own checks


def _model_issues(config: Any, bundle: str) -> tuple[list[Issue], list[str]]:
    """What the config model, the seccomp parser and the device rules find, and the model's warnings."""
    report = model.Report(collect=True)
    try:
        cfg = model.Config(config, bundle, report)
    except OciError as e:  # the top level is not an object: nothing else to check
        return [model.fault_of(e)], []
    faults = report.faults
    try:
        jsonio.check_strings(config, PREFIX)  # (create checks them as it reads the file)
    except OciError as e:
        faults.append(model.fault_of(e))
    seccomp = cfg.linux.seccomp
    if isinstance(seccomp, dict):
        from ocirun.seccomp import _parse

        try:
            _parse(seccomp, "linux.seccomp")
        except OciError as e:
            faults.append((e.what, e.why))
    version = config.get("ociVersion") if isinstance(config, dict) else None
    if isinstance(version, str) and not _SEMVER.match(version):
        faults.append(("ociVersion", f'{show(version)} is not a SemVer 2.0.0 version (e.g. "1.2.0")'))
    if os.path.isabs(cfg.root_path) and bundle:
        model.check_root(cfg, report)
    return faults, report.warnings


def _under(path: str, others: set[str]) -> bool:
    """Is `path` one of `others` or inside one of them?"""
    return any(path == o or path.startswith((o + ".", o + "[")) for o in others)


def _check(config: Any, bundle: str = "") -> tuple[list[str], list[str]]:
    schema = list(_schema_issues(config))
    faults, warnings = _model_issues(config, bundle)
    flagged = {p for p, _ in schema}
    issues = schema + [(p, why) for p, why in faults if not _under(p, flagged)]
    kept = [w for w in warnings if not _under(w.split(": ", 2)[1], flagged)]
    return _render(issues), kept


# ---------------------------------------------------------------- public API


def validate_config(config: dict[str, Any]) -> list[str]:
    """Every problem in a parsed config.json as ``config.json: <json.path>: <message>``, sorted by path.
    (root.path is not looked at: there is no bundle to resolve it in.)"""
    return _check(config)[0]


def validate_bundle(bundle: str) -> list[str]:
    """Validate ``<bundle>/config.json``, root.path (absolute or bundle-relative) included."""
    return _check_bundle(bundle)[0]


def _check_bundle(bundle: str) -> tuple[list[str], list[str]]:
    try:
        config = jsonio.load_input(model.read(os.path.abspath(bundle)), PREFIX)
    except OciError as e:
        return [str(e)], []
    return _check(config, os.path.abspath(bundle))


def main(bundle: str) -> int:
    """`ocirun validate`: print each problem (and warning) on stdout; 0 when valid, 1 otherwise."""
    problems, warnings = _check_bundle(bundle)
    for line in warnings:
        print(f"warning: {line}")
    for line in problems:
        print(line)
    if not problems:
        print(f"ocirun: {PREFIX}: valid")
    return 1 if problems else 0
