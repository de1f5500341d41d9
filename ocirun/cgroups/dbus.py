"""A small D-Bus client over a unix socket: the calls and the one signal the systemd cgroup driver needs.

Why our own: the driver makes a handful of method calls (StartTransientUnit, SetUnitProperties, StopUnit,
ResetFailedUnit, a property Get) and waits for one signal (JobRemoved). libraries for that either live
only in Debian's interpreter (python3-dbus), import `os`, `enum` and `socket` (~10 ms on every `delete`),
or need libsystemd's headers at build time and C callbacks (sd-bus through cffi). The wire format
(D-Bus specification, "Message Protocol") is small: this module marshals the types systemd's API uses
and does SASL EXTERNAL, with only `posix` and `_socket`. It is imported only by the systemd driver.

Like systemctl, root talks to systemd's private socket (/run/systemd/private: no dbus-daemon in the
path, no Hello or AddMatch round trips, every signal delivered); the bus is the fallback.

Values: basic types are Python ints, bools and strs; arrays are lists (a dict for a{..}), structs are
tuples, a variant is a (signature, value) pair.
"""

import posix

from ocirun.errors import OciError

_ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "s": 4, "o": 4, "g": 1,
          "a": 4, "(": 8, "{": 8, "v": 1, "h": 4}
_INT = {"y": (1, False), "n": (2, True), "q": (2, False), "i": (4, True), "u": (4, False), "x": (8, True),
        "t": (8, False), "h": (4, False)}
METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
_NO_REPLY = 1
# header field codes: PATH, INTERFACE, MEMBER, ERROR_NAME, REPLY_SERIAL, DESTINATION, SENDER, SIGNATURE
_F_PATH, _F_IFACE, _F_MEMBER, _F_ERROR, _F_REPLY, _F_DEST, _F_SENDER, _F_SIG = range(1, 9)
_FIELD_SIG = {_F_PATH: "o", _F_IFACE: "s", _F_MEMBER: "s", _F_ERROR: "s", _F_REPLY: "u", _F_DEST: "s",
              _F_SENDER: "s", _F_SIG: "g"}


class DBusError(OciError):
    """An error reply: `name` is the D-Bus error name (org.freedesktop.systemd1.NoSuchUnit, ...)."""

    def __init__(self, name: str, message: str, what: str = "systemd") -> None:
        super().__init__(what, f"{message} ({name})" if message else name)
        self.name = name
        self.message = message


# ----------------------------------------------------------------------------------------- signatures

def split_signature(sig: str) -> list[str]:
    """"a(sv)su" -> ["a(sv)", "s", "u"]: the complete types of a signature."""
    out, i = [], 0
    while i < len(sig):
        j = _end_of(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _end_of(sig: str, i: int) -> int:
    """Index just past the complete type starting at sig[i]."""
    c = sig[i] if i < len(sig) else ""
    if c == "a":
        return _end_of(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        j = i + 1
        while j < len(sig) and sig[j] != close:
            j = _end_of(sig, j)
        if j >= len(sig):
            raise ValueError(f"unterminated {c} in signature {sig!r}")
        return j + 1
    if c and c in _ALIGN:
        return i + 1
    raise ValueError(f"bad type {c!r} in signature {sig!r}")


# ----------------------------------------------------------------------------------------- marshal

class _Writer:
    """Little-endian marshalling into one buffer (offsets count from the start of the message)."""

    def __init__(self, start: int = 0) -> None:
        self.buf = bytearray()
        self.start = start

    def pad(self, n: int) -> None:
        self.buf += b"\0" * (-(self.start + len(self.buf)) % n)

    def put(self, sig: str, value: object) -> None:
        c = sig[0]
        self.pad(_ALIGN[c])
        if c in _INT:
            size, signed = _INT[c]
            self.buf += int(value).to_bytes(size, "little", signed=signed)  # type: ignore[call-overload]
        elif c == "b":
            self.buf += (1 if value else 0).to_bytes(4, "little")
        elif c in "so":
            data = str(value).encode()
            self.buf += len(data).to_bytes(4, "little") + data + b"\0"
        elif c == "g":
            data = str(value).encode()
            self.buf += bytes((len(data),)) + data + b"\0"
        elif c == "v":
            vsig, inner = value  # type: ignore[misc]
            self.put("g", vsig)
            self.put(vsig, inner)
        elif c == "(":
            for t, v in zip(split_signature(sig[1:-1]), value, strict=True):  # type: ignore[call-overload]
                self.put(t, v)
        elif c == "a":
            self._array(sig[1:], value)
        else:
            raise ValueError(f"cannot marshal type {c!r}")

    def _array(self, elem: str, value: object) -> None:
        at = len(self.buf)
        self.buf += b"\0\0\0\0"
        self.pad(_ALIGN[elem[0]])  # the padding to the first element is not counted in the length
        first = len(self.buf)
        if elem[0] == "{":
            k, v = split_signature(elem[1:-1])
            items = value.items() if isinstance(value, dict) else value
            for key, val in items:  # type: ignore[union-attr]
                self.pad(8)
                self.put(k, key)
                self.put(v, val)
        else:
            for item in value:  # type: ignore[union-attr]
                self.put(elem, item)
        self.buf[at:at + 4] = (len(self.buf) - first).to_bytes(4, "little")


def marshal(sig: str, values: tuple | list, start: int = 0) -> bytes:
    """The body for `values` of signature `sig` (aligned as if it began at offset `start`)."""
    w = _Writer(start)
    types = split_signature(sig)
    if len(types) != len(values):
        raise ValueError(f"signature {sig!r} has {len(types)} types, got {len(values)} values")
    for t, v in zip(types, values, strict=True):
        w.put(t, v)
    return bytes(w.buf)


def message(kind: int, serial: int, fields: dict[int, object], sig: str = "", body: tuple | list = (),
            flags: int = 0) -> bytes:
    """A whole little-endian message: the fixed header, the header fields, the body."""
    payload = marshal(sig, body) if sig else b""
    if sig:
        fields = {**fields, _F_SIG: sig}
    w = _Writer()
    w.buf += b"l" + bytes((kind, flags, 1)) + len(payload).to_bytes(4, "little") + serial.to_bytes(4, "little")
    w.put("a(yv)", [(code, (_FIELD_SIG[code], v)) for code, v in sorted(fields.items())])
    w.pad(8)
    return bytes(w.buf) + payload


# ----------------------------------------------------------------------------------------- unmarshal

class _Reader:
    def __init__(self, data: bytes, pos: int = 0, little: bool = True) -> None:
        self.data = data
        self.pos = pos
        self.order = "little" if little else "big"

    def align(self, n: int) -> None:
        self.pos += -self.pos % n

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("message truncated")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def _uint(self, n: int) -> int:
        return int.from_bytes(self._take(n), self.order)  # type: ignore[arg-type]

    def get(self, sig: str) -> object:
        c = sig[0]
        self.align(_ALIGN[c])
        if c in _INT:
            size, signed = _INT[c]
            return int.from_bytes(self._take(size), self.order, signed=signed)  # type: ignore[arg-type]
        if c == "b":
            return self._uint(4) != 0
        if c in "so":
            n = self._uint(4)
            s = self._take(n + 1)[:-1].decode(errors="replace")
            return s
        if c == "g":
            n = self._uint(1)
            return self._take(n + 1)[:-1].decode()
        if c == "v":
            vsig = self.get("g")
            return (vsig, self.get(vsig))  # type: ignore[arg-type]
        if c == "(":
            return tuple(self.get(t) for t in split_signature(sig[1:-1]))
        if c == "a":
            n = self._uint(4)
            elem = sig[1:]
            self.align(_ALIGN[elem[0]])
            end = self.pos + n
            if elem[0] == "{":
                k, v = split_signature(elem[1:-1])
                out: dict = {}
                while self.pos < end:
                    self.align(8)
                    key = self.get(k)
                    out[key] = self.get(v)
                return out
            items = []
            while self.pos < end:
                items.append(self.get(elem))
            return items
        if c == "d":
            raise ValueError("doubles are not supported")
        raise ValueError(f"cannot unmarshal type {c!r}")


def unmarshal(sig: str, data: bytes, pos: int = 0, little: bool = True) -> tuple:
    r = _Reader(data, pos, little)
    return tuple(r.get(t) for t in split_signature(sig))


class Message:
    """A received message: kind, serial, header fields (by code) and body values."""

    __slots__ = ("kind", "serial", "fields", "body")

    def __init__(self, kind: int, serial: int, fields: dict, body: tuple) -> None:
        self.kind, self.serial, self.fields, self.body = kind, serial, fields, body

    @property
    def member(self) -> str:
        return self.fields.get(_F_MEMBER, "")

    @property
    def interface(self) -> str:
        return self.fields.get(_F_IFACE, "")

    @property
    def reply_serial(self) -> int:
        return self.fields.get(_F_REPLY, 0)


def message_length(head: bytes) -> int:
    """Total length of the message whose first 16 bytes are `head`."""
    little = head[:1] == b"l"
    order = "little" if little else "big"
    body = int.from_bytes(head[4:8], order)
    fields = int.from_bytes(head[12:16], order)
    return 16 + fields + (-(16 + fields) % 8) + body


def parse(data: bytes) -> Message:
    little = data[:1] == b"l"
    if data[:1] not in (b"l", b"B"):
        raise ValueError("bad endianness byte")
    r = _Reader(data, 8, little)
    serial = r.get("u")
    fields = {code: v[1] for code, v in r.get("a(yv)")}  # type: ignore[union-attr]
    r.align(8)
    sig = fields.get(_F_SIG, "")
    body = unmarshal(sig, data, r.pos, little) if sig else ()
    return Message(data[1], serial, fields, body)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- connection

class Connection:
    """One authenticated connection; `call` waits for the reply, signals that arrive meanwhile are kept."""

    def __init__(self, path: str, *, bus: bool, timeout: float = 25.0) -> None:
        import _socket

        self.path = path
        self.timeout = timeout
        self._sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        self._buf = b""
        self._serial = 0
        self.signals: list[Message] = []
        self.is_bus = bus
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(path)
            self._auth()
            if bus:
                self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello")
        except BaseException:
            self._sock.close()
            raise

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _auth(self) -> None:
        """SASL EXTERNAL with our euid as the server sees it (SO_PEERCRED: outside a user namespace we are
        in, e.g. rootless podman's); BEGIN is sent at once (pipelined, as sd-bus does)."""
        uid = str(host_uid()).encode().hex().encode()
        self._sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\nBEGIN\r\n")
        while b"\r\n" not in self._buf:
            self._recv()
        line, _, self._buf = self._buf.partition(b"\r\n")
        if not line.startswith(b"OK "):
            raise OciError(f"D-Bus {self.path}", f"authentication refused: {line.decode(errors='replace')}")

    def _recv(self) -> None:
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError:
            raise OciError(f"D-Bus {self.path}", f"no answer within {self.timeout:g} s") from None
        if not chunk:
            raise OciError(f"D-Bus {self.path}", "connection closed by the peer")
        self._buf += chunk

    def read_message(self) -> Message:
        while len(self._buf) < 16:
            self._recv()
        n = message_length(self._buf[:16])
        while len(self._buf) < n:
            self._recv()
        data, self._buf = self._buf[:n], self._buf[n:]
        return parse(data)

    def send(self, dest: str, path: str, iface: str, member: str, sig: str = "", args: tuple | list = (),
             *, no_reply: bool = False) -> int:
        """Send a method call; returns its serial (replies are matched by it)."""
        self._serial += 1
        fields: dict[int, object] = {_F_PATH: path, _F_IFACE: iface, _F_MEMBER: member}
        if self.is_bus:
            fields[_F_DEST] = dest
        self._sock.sendall(message(METHOD_CALL, self._serial, fields, sig, args, _NO_REPLY if no_reply else 0))
        return self._serial

    def reply(self, serial: int) -> tuple:
        """The body of the reply to `serial`; an error reply raises DBusError."""
        while True:
            m = self.read_message()
            if m.kind == SIGNAL:
                self.signals.append(m)
            elif m.kind in (METHOD_RETURN, ERROR) and m.reply_serial == serial:
                if m.kind == ERROR:
                    text = m.body[0] if m.body and isinstance(m.body[0], str) else ""
                    raise DBusError(m.fields.get(_F_ERROR, "org.freedesktop.DBus.Error.Failed"), text)
                return m.body

    def call(self, dest: str, path: str, iface: str, member: str, sig: str = "", args: tuple | list = ()) -> tuple:
        return self.reply(self.send(dest, path, iface, member, sig, args))

    def wait_signal(self, match, timeout: float) -> Message:  # noqa: ANN001
        """The first signal (kept or new) for which match(message) is true, within `timeout` seconds."""
        import time

        for i, m in enumerate(self.signals):
            if match(m):
                return self.signals.pop(i)
        end = time.monotonic() + timeout
        try:
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self._sock.settimeout(min(left, self.timeout))
                m = self.read_message()
                if m.kind == SIGNAL:
                    if match(m):
                        return m
                    self.signals.append(m)
        except TimeoutError:
            raise OciError(f"D-Bus {self.path}", f"no signal within {timeout:g} s") from None
        finally:
            self._sock.settimeout(self.timeout)


def host_uid(uid_map: str | None = None) -> int:
    """Our euid in the initial user namespace (through /proc/self/uid_map; itself when not mapped)."""
    euid = posix.geteuid()
    if uid_map is None:
        try:
            with open("/proc/self/uid_map") as f:
                uid_map = f.read()
        except OSError:
            return euid
    for line in uid_map.splitlines():
        f = line.split()
        if len(f) == 3 and int(f[0]) <= euid < int(f[0]) + int(f[2]):
            return int(f[1]) + euid - int(f[0])
    return euid


def _bus_path(address: str) -> str:
    """The socket of a "unix:path=..." (or "unix:abstract=...") address; other transports are refused."""
    for part in address.split(";"):
        kind, _, rest = part.partition(":")
        if kind != "unix":
            continue
        for kv in rest.split(","):
            k, _, v = kv.partition("=")
            if k == "path":
                return _unescape(v)
            if k == "abstract":
                return "\0" + _unescape(v)
    raise OciError("D-Bus address", f"{address!r} has no unix:path= or unix:abstract= transport")


def _unescape(v: str) -> str:
    if "%" not in v:
        return v
    out, i = bytearray(), 0
    raw = v.encode()
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw):
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode()


def candidates(user: bool) -> list[tuple[str, bool]]:
    """Where to reach the system (or the user's) systemd, in order: (socket path, is a bus)."""
    from ocirun import fspath

    if user:
        rt = fspath.getenv("XDG_RUNTIME_DIR") or f"/run/user/{posix.geteuid()}"
        out = [(rt + "/systemd/private", False)]
        addr = fspath.getenv("DBUS_SESSION_BUS_ADDRESS")
        out.append((_bus_path(addr), True) if addr else (rt + "/bus", True))
        return out
    out = [("/run/systemd/private", False)] if posix.geteuid() == 0 else []
    addr = fspath.getenv("DBUS_SYSTEM_BUS_ADDRESS")
    out.append((_bus_path(addr), True) if addr else ("/run/dbus/system_bus_socket", True))
    return out


def connect(user: bool = False, timeout: float = 25.0) -> Connection:
    """A connection to systemd: its private socket when we may use it, else the bus."""
    errors = []
    for path, bus in candidates(user):
        try:
            return Connection(path, bus=bus, timeout=timeout)
        except OSError as e:
            errors.append(f"{path.lstrip(chr(0))}: {(e.strerror or str(e)).lower()}")
    which = "the user's systemd (is there a user session? XDG_RUNTIME_DIR)" if user else "systemd"
    raise OciError("systemd cgroup driver", f"cannot reach {which}: {'; '.join(errors)}")
