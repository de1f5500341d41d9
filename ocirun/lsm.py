"""AppArmor and SELinux labels: applied through /proc/self/attr when the host has the LSM, otherwise a
clear error (a profile that cannot be applied must not be silently dropped)."""


from ocirun import fspath
from ocirun.errors import OciError


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return fspath.exists("/sys/fs/selinux/enforce")


def exec_attrs(p) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """(label, /proc/self/attr file, value) writes that label the process at its execve."""
    out = []
    if p.apparmor_profile:
        if not apparmor_enabled():
            raise OciError("process.apparmorProfile", f'"{p.apparmor_profile}": AppArmor is not enabled on this host')
        attr = "/proc/self/attr/apparmor/exec"
        if not fspath.exists(attr):
            attr = "/proc/self/attr/exec"
        out.append(("process.apparmorProfile", attr, f"exec {p.apparmor_profile}"))
    if p.selinux_label:
        if not selinux_enabled():
            raise OciError("process.selinuxLabel", f'"{p.selinux_label}": SELinux is not enabled on this host')
        out.append(("process.selinuxLabel", "/proc/self/attr/exec", p.selinux_label))
    return out


def check_mount_label(label: str) -> None:
    if label and not selinux_enabled():
        raise OciError("linux.mountLabel", f'"{label}": SELinux is not enabled on this host')
