"""ocirun: an OCI runtime-spec compliant low-level container runtime."""

__version__ = "0.1.0"
SPEC_VERSION = "1.2.0"

from time import monotonic_ns as _clock  # noqa: E402  (`time` is loaded at interpreter start: free)

T0 = _clock()  # time zero of --trace: when the package was first imported
TRACER = None  # an ocirun.tracer.Tracer while --trace / OCIRUN_TRACE is on; call sites test it first
WARM_PID = 0  # the C launcher's cgroup-attach warm-up child (tools/launcher.c), reaped by cgroups.prewarm_wait
