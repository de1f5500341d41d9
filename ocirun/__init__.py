"""ocirun: an OCI runtime-spec compliant low-level container runtime."""

__version__ = "0.1.0"
SPEC_VERSION = "1.2.0"
