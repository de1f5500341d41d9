"""`ocirun features`: the runtime-spec features.md document (a plain dict; the CLI dumps it).

Every list is derived from the table the runtime itself uses (config, plan, capabilities, seccomp), so
what we advertise is exactly what config.json may use. Only properties defined by runtime-spec
`ociVersionMax` appear, as features.md requires.
"""

from ocirun import SPEC_VERSION, __version__
from ocirun import seccomp as _seccomp
from ocirun.capabilities import CAP_NAMES

OCI_VERSION_MIN = "1.0.0"


def mount_options() -> list[str]:
    """Options the plan compiler maps to mount(2) flags, propagation or mount_setattr(2) attributes,
    tmpcopyup (a copy step after a tmpfs mount), and idmap/ridmap (id-mapped binds, ocirun.mountsrc)."""
    from ocirun.plan import MOUNT_FLAGS, PROPAGATION, RECURSIVE_ATTRS

    return sorted({*MOUNT_FLAGS, *PROPAGATION, *RECURSIVE_ATTRS, "tmpcopyup", "idmap", "ridmap"})


def features() -> dict:
    """The features structure, key order as `runc features` prints it."""
    from ocirun.config import HOOK_KINDS, NAMESPACES

    annotations = {"io.github.ocirun.version": __version__}
    libseccomp = _seccomp.libseccomp_version()
    if libseccomp is not None:
        annotations["io.github.seccomp.libseccomp.version"] = libseccomp
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": mount_options(),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": list(CAP_NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": True, "rdma": True},
            "seccomp": {
                "enabled": libseccomp is not None,
                "actions": sorted(_seccomp.ACTIONS),
                "operators": sorted(_seccomp.OPERATORS),
                "archs": sorted(_seccomp.ARCHS),
                "knownFlags": list(_seccomp.FLAGS),
                "supportedFlags": _seccomp.supported_flags() if libseccomp is not None else [],
            },
            # apparmorProfile / selinuxLabel / mountLabel are parsed but not applied.
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            # Id-mapped bind mounts (mounts[].uidMappings/gidMappings, idmap/ridmap): containerd's CRI
            # only asks for them when this says so. The kernel needs mount_setattr (5.12) and the source
            # filesystem's support; a config that needs what the host lacks fails create with the reason.
            "mountExtensions": {"idmap": {"enabled": True}},
        },
        "annotations": annotations,
    }
