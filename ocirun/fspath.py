"""The few os / os.path functions the runtime needs, on the builtin `posix` module.

Why not os: `import os` costs 1.2-2 ms on the dev VM (it builds the ~30 ABC classes of _collections_abc),
about a tenth of a whole `ocirun run`, and more than all of `ocirun state` beyond the interpreter's own start.
So the runtime's modules use `posix` directly (os re-exports it) and these helpers, which keep posixpath's
semantics for str paths (tests/test_fspath.py compares them with posixpath).
"""

import posix

_S_IFMT, _S_IFDIR, _S_IFLNK = 0o170000, 0o040000, 0o120000


def join(a: str, *parts: str) -> str:
    path = a
    for b in parts:
        if b.startswith("/"):
            path = b
        elif not path or path.endswith("/"):
            path += b
        else:
            path += "/" + b
    return path


def split(p: str) -> tuple[str, str]:
    i = p.rfind("/") + 1
    head, tail = p[:i], p[i:]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head, tail


def dirname(p: str) -> str:
    return split(p)[0]


def basename(p: str) -> str:
    return p[p.rfind("/") + 1:]


def normpath(path: str) -> str:
    """Lexical: "a//b/./c/.." -> "a/b"; ".." never climbs above "/"; POSIX keeps a leading "//"."""
    if not path:
        return "."
    initial = 0
    if path.startswith("/"):
        initial = 2 if path.startswith("//") and not path.startswith("///") else 1
    comps: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp != ".." or (not initial and not comps) or (comps and comps[-1] == ".."):
            comps.append(comp)
        elif comps:
            comps.pop()
    out = "/" * initial + "/".join(comps)
    return out or "."


def abspath(p: str) -> str:
    return normpath(p if p.startswith("/") else join(posix.getcwd(), p))


def _mode(p: str, follow: bool = True) -> int:
    try:
        return posix.stat(p, follow_symlinks=follow).st_mode
    except (OSError, ValueError):
        return 0


def exists(p: str) -> bool:
    return _mode(p) != 0


def isdir(p: str) -> bool:
    return _mode(p) & _S_IFMT == _S_IFDIR


def islink(p: str) -> bool:
    return _mode(p, follow=False) & _S_IFMT == _S_IFLNK


def makedirs(path: str, mode: int = 0o777) -> None:
    """mkdir -p (os.makedirs with exist_ok=True)."""
    try:
        posix.mkdir(path, mode)
    except FileExistsError:
        if not isdir(path):
            raise
    except FileNotFoundError:
        parent = dirname(path.rstrip("/"))
        if not parent or parent == path:
            raise
        makedirs(parent, mode)
        try:
            posix.mkdir(path, mode)
        except FileExistsError:
            if not isdir(path):
                raise


def getenv(name: str, default: str = "") -> str:
    """An environment variable as str (posix.environ is bytes)."""
    v = posix.environ.get(name.encode())
    return default if v is None else v.decode(errors="surrogateescape")


def fsencode(p: str) -> bytes:
    return p.encode(errors="surrogateescape")
