"""tmpfs with tmpcopyup (podman --read-only puts it on /tmp, /var/tmp, /run): the tmpfs starts with a copy of the
directory it hides — files, modes, owners, symlinks (not followed), subdirectories — and the rootfs is untouched."""

from __future__ import annotations

import os


def test_tmpcopyup_copies_hidden_directory(rt, bundle):
    b = bundle(["sh", "-c", "stat -c '%n %a %u:%g' /data /data/f /data/sub /data/sub/g; readlink /data/ln; "
                "cat /data/f /data/sub/g; grep ' /data ' /proc/self/mounts | cut -d' ' -f3; "
                "touch /data/new && echo writable"])
    data = os.path.join(b.rootfs, "data")
    os.makedirs(os.path.join(data, "sub"))
    with open(os.path.join(data, "f"), "w") as f:
        f.write("one\n")
    with open(os.path.join(data, "sub", "g"), "w") as f:
        f.write("two\n")
    os.chmod(os.path.join(data, "f"), 0o604)
    os.chown(os.path.join(data, "f"), 1000, 1001)
    os.chmod(data, 0o1777)
    os.symlink("/etc/passwd", os.path.join(data, "ln"))
    b.spec["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "nodev", "tmpcopyup"]})
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert p.out.splitlines() == ["/data 1777 0:0", "/data/f 604 1000:1001", "/data/sub 755 0:0",
                                  "/data/sub/g 644 0:0", "/etc/passwd", "one", "two", "tmpfs", "writable"], p.out
    assert not os.path.exists(os.path.join(data, "new"))


def test_tmpcopyup_on_missing_directory(rt, bundle):
    """Nothing to copy: the mount point is created and the tmpfs is empty."""
    b = bundle(["sh", "-c", "ls -A /fresh | wc -l"])
    b.spec["mounts"].append({"destination": "/fresh", "type": "tmpfs", "source": "tmpfs",
                             "options": ["tmpcopyup", "mode=755"]})
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0 and p.out.strip() == "0", (p.out, p.err)
