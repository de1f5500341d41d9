"""One error type for everything a user can cause, and one wording for each common fault.

The CLI prints an OciError as one line, `ocirun: <what>: <why>`. The helpers below word the faults every
validator meets (config, resources, devices, rlimits, seccomp, update, `ocirun validate`) the same way, and
quote user values so that a value can never break a message into two lines. Import-free: every command loads
this module.
"""


class OciError(Exception):
    """`what` names the object (a file, a JSON path, a container), `why` the reason."""

    def __init__(self, what: str, why: str, status: int = 1) -> None:
        super().__init__(f"{what}: {why}")
        self.what = what
        self.why = why
        self.status = status


SHOW_MAX = 60  # characters of a quoted value in a message


def show(value: object, limit: int = SHOW_MAX) -> str:
    """A value as JSON (ASCII, escapes for control characters and lone surrogates), cut to one short line
    (a path is better whole: give it a larger `limit`)."""
    from ocirun import jsonio

    try:
        text = jsonio.dumps_spaced(value)
    except (ValueError, TypeError, RecursionError):
        text = one_line(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters escaped, and what UTF-8 cannot hold (a lone
    surrogate) written as \\uXXXX: an error line stays one line, whatever value it quotes."""
    if text.isprintable() and text.isascii():
        return text
    out = []
    for ch in text:
        o = ord(ch)
        if o < 0x20 or o == 0x7F:
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch) or f"\\x{o:02x}")
        elif 0xD800 <= o <= 0xDFFF or ch in "\u2028\u2029\x85":
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def must_be(kind: str, value: object) -> str:
    """`must be an integer, got string "7"`: the wrong type, named with what was there."""
    art = "an" if kind[:1] in "aeiou" else "a"
    return f"must be {art} {kind}, got " + ("null" if value is None else f"{json_type(value)} {show(value)}")


def out_of_range(value: object, lo: int | None, hi: int | None, title: str = "") -> str:
    """`-1 is out of range: must be between 0 and 2147483647` (one bound: `>= 1`, `<= 7`)."""
    if lo is not None and hi is not None:
        bounds = f"between {lo} and {hi}"
    else:
        bounds = f">= {lo}" if lo is not None else f"<= {hi}"
    return f"{value} is out of range: must be {bounds}" + (f" ({title})" if title else "")


def unknown(value: object, choices: "tuple | list | dict | None" = None, kind: str = "value") -> str:
    """`invalid value "foo": must be one of pid, network`; without a list of choices, `unknown <kind> "foo"`."""
    if choices is None:
        return f"unknown {kind} {show(value)}"
    return f"invalid {kind} {show(value)}: must be one of {', '.join(map(str, choices))}"


def not_absolute(value: str) -> str:
    return f"must be an absolute path, got {show(value)}"


def repeated(kind: str, value: object, first: str) -> str:
    """`namespace "pid" repeated (first at linux.namespaces[0])`."""
    return f"{kind} {show(value)} repeated (first at {first})"


REQUIRED = "is required"
EMPTY = "must not be empty"


def key_path(parent: str, key: str) -> str:
    """The JSON path of an object member: `linux.resources` + `memory`, or `linux.sysctl["net.ipv4.x"]`
    for a key that is not a plain name (dots, spaces, anything a user put there)."""
    plain = key.isidentifier() and key.isascii()
    if plain:
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{show(key)}]"
