"""ocirun.jsonio: the `_json` accelerator alone, with json.decoder's messages and our own line and column."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ocirun import jsonio
from ocirun.errors import OciError

CASES = [
    '{"a": 1,}', '[1, 2,]', '{"a" 1}', '[1 2]', '{"a": "x', '"a\x01"', '"\\x"', "{1: 2}", "[", "", "   ", "{} {}",
    '{\n  "a": [1,\n    2,\n  ]\n}', "[tru]", "[-]", "\n\n  [1,\n\n ,2]", '{"a":\n\n', '["\\ud800" "x"]',
]


@pytest.mark.parametrize("text", CASES)
def test_line_and_column_match_the_json_module(text):
    """Where json.loads says `<msg>: line L column C (char N)`, we say `line L column C: <msg>`."""
    with pytest.raises(json.JSONDecodeError) as want:
        json.loads(text)
    with pytest.raises(OciError) as got:
        jsonio.loads(text, "x.json")
    w = want.value
    assert got.value.what == "x.json"
    assert got.value.why.startswith(f"line {w.lineno} column {w.colno}: "), (got.value.why, str(w))


@pytest.mark.parametrize(("text", "why"), [
    ('{"a": 1,}', "line 1 column 9: trailing comma before }"),
    ("[1,\n 2 , ]", "line 2 column 6: trailing comma before ]"),
    ('{"a": "x', "line 1 column 7: Unterminated string"),
    ('"a\x01"', "line 1 column 3: Invalid control character"),
    ("{} {}", "line 1 column 4: Extra data"),
    ("\ufeff{}", "line 1 column 1: a byte order mark (U+FEFF) before the JSON text"),
    ("[NaN]", "line 1 column 2: NaN is not valid JSON"),
    ("[1, -Infinity]", "line 1 column 5: -Infinity is not valid JSON"),
    ("[" + "7" * 5000 + "]", "line 1 column 2: number too large (5000 digits)"),
    ("[" * 100000, "invalid JSON: nested too deeply"),
])
def test_messages(text, why):
    with pytest.raises(OciError) as e:
        jsonio.loads(text, "config.json")
    assert e.value.why == why


def test_the_stand_in_never_stays_and_the_real_module_still_works():
    """The first scan error puts a stand-in json.decoder in sys.modules for a moment: later `import json`
    (validate, specgen) must get the real one; with the real one loaded its JSONDecodeError is used."""
    code = ("import sys; sys.path.insert(0, '.')\n"
            "from ocirun import jsonio\n"
            "from ocirun.errors import OciError\n"
            "try:\n    jsonio.loads('[1 2]')\nexcept OciError as e:\n    print(e.why)\n"
            "assert 'json.decoder' not in sys.modules and 'json' not in sys.modules\n"
            "import json\nprint(json.loads('[1]'))\n"
            "try:\n    jsonio.loads('[1 2]')\nexcept OciError as e:\n    print(e.why)\n")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True,
                         cwd=__file__.rsplit("/tests/", 1)[0])
    assert out.stdout.splitlines() == ["line 1 column 4: Expecting ',' delimiter", "[1]",
                                       "line 1 column 4: Expecting ',' delimiter"]


def test_load_input_checks_utf8_and_strings():
    assert jsonio.load_input(b'{"a": "\\u00e9", "b": ["x"]}', "f") == {"a": "é", "b": ["x"]}
    with pytest.raises(OciError, match=r"^f: line 2 column 3: invalid UTF-8 \(byte 0xc3\)$"):
        jsonio.load_input(b'[\n "\xc3"]', "f")
    with pytest.raises(OciError, match=r'^f: a\[1\]\.b: string "\\u0000" contains a NUL byte$'):
        jsonio.load_input(b'{"a": [1, {"b": "\\u0000"}]}', "f")
    with pytest.raises(OciError, match=r'^f: \["k\\udc00"\]: key "k\\udc00" contains a lone surrogate: not text$'):
        jsonio.load_input(b'{"k\\udc00": 1}', "f")
    with pytest.raises(OciError, match=r'^f: \(top level\): string "\\ud83d" contains a lone surrogate'):
        jsonio.load_input(b'"\\ud83d"', "f")
    assert jsonio.load_input(b'"\\ud83d\\ude00"', "f") == "\U0001f600"  # a pair is one character: fine


def test_check_strings_walks_deep_documents_without_recursion():
    deep: list = []
    node = deep
    for _ in range(5000):
        node.append([])
        node = node[0]
    node.append("x\0")
    with pytest.raises(OciError, match="contains a NUL byte"):
        jsonio.check_strings(deep, "f")


def test_dumps_spaced_is_one_line_of_ascii():
    assert jsonio.dumps_spaced({"a": ["x\n", "\ud800", 1.5, None]}) == '{"a": ["x\\n", "\\ud800", 1.5, null]}'
