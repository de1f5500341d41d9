"""ocirun.fspath against posixpath: the same answers for str paths, without importing os."""

import os
import posixpath
import subprocess
import sys

import pytest

from ocirun import fspath

PATHS = ["", ".", "..", "/", "//", "///", "a", "a/", "/a", "//a", "///a", "a/b", "a//b", "a/./b", "a/../b", "../a",
         "../../a/..", "/..", "/../a", "/a/b/../../..", "a/b/", "/a/b//", "//a/./b/../c", "./a/./", "a/..",
         "/a/b/c/../../d/./e/", "...", "a/.../b", "/ a / b ", "ünï/cödé/.."]


@pytest.mark.parametrize("p", PATHS)
def test_lexical_functions_match_posixpath(p: str) -> None:
    assert fspath.normpath(p) == posixpath.normpath(p)
    assert fspath.split(p) == posixpath.split(p)
    assert fspath.dirname(p) == posixpath.dirname(p)
    assert fspath.basename(p) == posixpath.basename(p)
    if p:
        assert fspath.abspath(p) == posixpath.abspath(p)
    for q in ("x", "/x", "", "x/", "../y"):
        assert fspath.join(p, q) == posixpath.join(p, q)
        assert fspath.join(p, q, "z") == posixpath.join(p, q, "z")


def test_file_predicates(tmp_path) -> None:  # noqa: ANN001
    d, f, link, dangling = tmp_path / "d", tmp_path / "f", tmp_path / "l", tmp_path / "dl"
    d.mkdir()
    f.write_text("x")
    link.symlink_to(d)
    dangling.symlink_to(tmp_path / "missing")
    for p in map(str, (d, f, link, dangling, tmp_path / "missing", "")):
        assert (fspath.exists(p), fspath.isdir(p), fspath.islink(p)) == (
            os.path.exists(p), os.path.isdir(p), os.path.islink(p)), p


def test_makedirs(tmp_path) -> None:  # noqa: ANN001
    deep = str(tmp_path / "a" / "b" / "c")
    fspath.makedirs(deep, 0o711)
    assert os.path.isdir(deep) and os.stat(deep).st_mode & 0o777 == 0o711 & ~_umask()
    fspath.makedirs(deep)  # exists: fine
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        fspath.makedirs(str(tmp_path / "file"))
    with pytest.raises(NotADirectoryError):
        fspath.makedirs(str(tmp_path / "file" / "sub"))


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_getenv_and_fsencode(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("OCIRUN_FSPATH_TEST", "välue")
    assert fspath.getenv("OCIRUN_FSPATH_TEST") == "välue"
    assert fspath.getenv("OCIRUN_FSPATH_UNSET", "d") == "d"
    assert fspath.fsencode("a\udcffb") == os.fsencode("a\udcffb")


def test_import_does_not_load_os() -> None:
    code = "import sys, ocirun.fspath; print('os' in sys.modules)"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "False"
