"""JSON through the `_json` C accelerator alone.

`import json` costs ~15 ms here (json.decoder pulls in `re` and `enum`); the runtime reads config.json and
writes state.json on every lifecycle command, so it talks to `_json` directly. The price is paid on the error
path only: `_json` words its syntax errors through json.decoder.JSONDecodeError, which it looks up in
sys.modules and never imports, so a failed scan is run again with a stand-in there to learn the message and
offset, and the line and column are counted here.
"""

import _json
import sys

from ocirun.errors import OciError, show

_WS = " \t\n\r"


class _Constant(ValueError):
    """NaN, Infinity or -Infinity: JavaScript, not JSON (Go's encoding/json, and so runc, refuses them)."""


class _HugeNumber(ValueError):
    """An integer literal longer than Python converts (sys.get_int_max_str_digits), far beyond any field."""


def _no_constant(name: str) -> float:
    raise _Constant(name)


def _int(digits: str) -> int:
    try:
        return int(digits)
    except ValueError:
        raise _HugeNumber(digits) from None


class _Ctx:
    """The attributes `_json.make_scanner` reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = staticmethod(_int)
    parse_constant = staticmethod(_no_constant)
    memo: dict = {}


_scan = _json.make_scanner(_Ctx())


class _DecodeError(ValueError):
    """Stands in for json.decoder.JSONDecodeError while a failed scan is repeated."""

    def __init__(self, msg: str, doc: str, pos: int) -> None:
        super().__init__(msg)
        self.msg = msg
        self.pos = pos


class _DecoderStandIn:
    JSONDecodeError = _DecodeError


def where(text: str, pos: int) -> str:
    """`line L column C` of a character offset (both from 1, as json.JSONDecodeError counts them)."""
    pos = max(pos, 0)
    line = text.count("\n", 0, pos) + 1
    return f"line {line} column {pos - text.rfind(chr(10), 0, pos)}"


def _syntax_error(text: str, start: int, what: str) -> OciError:
    """Scan again with the stand-in in place to get _json's own message; `json.decoder` when it is loaded."""
    real = sys.modules.get("json.decoder")
    if real is None:
        sys.modules["json.decoder"] = _DecoderStandIn  # type: ignore[assignment]
    try:
        _scan(text, start)
        msg, pos = "Expecting value", start  # (not reached: the same text fails the same way)
    except StopIteration as e:
        msg, pos = "Expecting value", e.value
    except ValueError as e:  # ours, or json.decoder.JSONDecodeError when json is loaded (validate, tests)
        msg, pos = getattr(e, "msg", str(e)), getattr(e, "pos", start)
    finally:
        if real is None:
            del sys.modules["json.decoder"]
    return OciError(what, f"{where(text, pos)}: {_reword(text, pos, msg)}")


def _reword(text: str, pos: int, msg: str) -> str:
    """_json's message, made to stand without the offset it expects after it, and the usual mistakes named."""
    if msg.endswith(" at"):  # "Unterminated string starting at", "Invalid control character at"
        msg = msg[:-3].removesuffix(" starting")
    close = text[pos:pos + 1]
    before = text[:pos].rstrip(_WS)[-1:]
    if before == "," and close in ("]", "}"):
        return f"trailing comma before {close}"
    if pos == 0 and text[:1] == "\ufeff":
        return "a byte order mark (U+FEFF) before the JSON text"
    return msg


def loads(text: str, what: str = "JSON") -> object:
    """Parse one JSON document; any syntax error becomes one OciError line naming `what`, line and column."""
    i = 0
    n = len(text)
    while i < n and text[i] in _WS:
        i += 1
    try:
        obj, end = _scan(text, i)
    except StopIteration as e:
        raise OciError(what, f"{where(text, e.value)}: {_reword(text, e.value, 'Expecting value')}") from None
    except _Constant as e:
        raise OciError(what, f"{where(text, text.find(e.args[0]))}: {e.args[0]} is not valid JSON") from None
    except _HugeNumber as e:
        raise OciError(what, f"{where(text, text.find(e.args[0]))}: number too large "
                             f"({len(e.args[0])} digits)") from None
    except RecursionError:
        raise OciError(what, "invalid JSON: nested too deeply") from None
    except (SystemError, ValueError):  # SystemError: _json found no JSONDecodeError to raise
        raise _syntax_error(text, i, what) from None
    while end < n and text[end] in _WS:
        end += 1
    if end != n:
        raise OciError(what, f"{where(text, end)}: Extra data")
    return obj


def load_input(data: bytes, what: str) -> object:
    """A JSON file from the user (config.json, `exec --process`, `update --resources`): UTF-8, then JSON,
    then every string checked for what no path, argument or kernel interface can carry (check_strings)."""
    try:
        text = data.decode()
    except UnicodeDecodeError as e:
        good = data[: e.start].decode()
        raise OciError(what, f"{where(good, len(good))}: invalid UTF-8 (byte 0x{data[e.start]:02x})") from None
    obj = loads(text, what)
    if "\\u" in text:  # a NUL or a lone surrogate can only come from an escape: skip the walk without one
        check_strings(obj, what)
    return obj


def check_strings(obj: object, what: str) -> None:
    """Refuse NUL (a C string would end there: "/bin/busybox\\u0000x" would run busybox) and lone surrogates
    (not text: they cannot be written out as UTF-8) in every string and key, naming the first one's path."""
    from ocirun.errors import key_path

    stack: list[tuple[object, str]] = [(obj, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            items = list(node.items())
            for k, v in reversed(items):
                sub = key_path(path, k)
                _check_string(k, sub, what, "key")
                stack.append((v, sub))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(node))))
        elif isinstance(node, str):
            _check_string(node, path, what, "string")


def _check_string(s: str, path: str, what: str, kind: str) -> None:
    if "\0" in s:
        why = "contains a NUL byte"
    elif not s.isascii():
        try:
            s.encode()
            return
        except UnicodeEncodeError:
            why = "contains a lone surrogate: not text"
    else:
        return
    path = path or "(top level)"
    e = OciError(what, f"{path}: {kind} {show(s)} {why}")
    e.path, e.reason = path, f"{kind} {show(s)} {why}"  # type: ignore[attr-defined] (as config.bad)
    raise e


_encode = _json.make_encoder(
    None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, True
)


def dumps(obj: object) -> str:
    """Compact JSON, as runc writes state.json."""
    return "".join(_encode(obj, 0))


_spaced: list = []


def dumps_spaced(obj: object) -> str:
    """One line of JSON with a space after "," and ":", as json.dumps writes it (values in messages)."""
    if not _spaced:
        _spaced.append(_json.make_encoder(None, None, _json.encode_basestring_ascii, None, ": ", ", ", False,
                                          False, True))
    return "".join(_spaced[0](obj, 0))


def dumps_pretty(obj: object) -> str:
    """Indented JSON for humans (`spec`, `features`, `state`): the stdlib is fine off the hot path."""
    import json

    return json.dumps(obj, indent=2)
