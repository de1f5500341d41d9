"""JSON through the `_json` C accelerator alone.

`import json` costs ~15 ms here (json.decoder pulls in `re` and `enum`); the runtime reads config.json and
writes state.json on every lifecycle command, so it talks to `_json` directly.
"""

import _json

from ocirun.errors import OciError

_WS = " \t\n\r"


class _Ctx:
    """The attributes `_json.make_scanner` reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return float(name.lower().replace("infinity", "inf"))


_scan = _json.make_scanner(_Ctx())


def loads(text: str, what: str = "JSON") -> object:
    """Parse one JSON document; any syntax error becomes an OciError naming `what`."""
    i = 0
    n = len(text)
    while i < n and text[i] in _WS:
        i += 1
    try:
        obj, end = _scan(text, i)
    except StopIteration as e:
        raise OciError(what, f"invalid JSON at offset {e.value}") from None
    except ValueError as e:  # JSONDecodeError
        raise OciError(what, f"invalid JSON: {e}") from None
    except RecursionError:
        raise OciError(what, "invalid JSON: nested too deeply") from None
    except SystemError:
        # The scanner builds its error from json.decoder.JSONDecodeError, found only if json.decoder was
        # imported: else it fails without an exception. Only now, on a malformed document, import it and scan
        # again for the message.
        import sys

        if "json.decoder" in sys.modules:
            raise
        import json.decoder  # noqa: F401

        return loads(text, what)
    while end < n and text[end] in _WS:
        end += 1
    if end != n:
        raise OciError(what, f"invalid JSON: extra data at offset {end}")
    return obj


_encode = _json.make_encoder(
    None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, True
)


def dumps(obj: object) -> str:
    """Compact JSON, as runc writes state.json."""
    return "".join(_encode(obj, 0))


def dumps_pretty(obj: object) -> str:
    """Indented JSON for humans (`spec`, `features`, `state`): the stdlib is fine off the hot path."""
    import json

    return json.dumps(obj, indent=2)
