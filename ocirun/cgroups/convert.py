"""OCI (cgroup v1 shaped) values -> cgroup v2 values, as runc and crun convert them. Pure functions."""

from ocirun.errors import OciError


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000]: the linear map crun and runc < 1.3 use.

    (runc >= 1.3 switched to a log-quadratic fit that maps the default 1024 to 100; this runtime keeps
    the linear one so existing v2 configs keep their weights: 1024 -> 39.)
    """
    if shares == 0:
        return 0
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000] (linear, runc/crun)."""
    if weight == 0:
        return 0
    weight = min(max(weight, 10), 1000)
    return 1 + ((weight - 10) * 9999) // 990


def max_str(value: int) -> str:
    """v1's "-1 = unlimited" spelled the v2 way."""
    return "max" if value == -1 else str(value)


def swap_to_v2(swap: int | None, limit: int | None, where: str = "linux.resources.memory.swap") -> int | None:
    """OCI swap is memory+swap; memory.swap.max is swap alone: swap - limit (runc's rules).

    Returns None when nothing is to be written, -1 for "max".
    """
    if limit == -1 and swap is None:
        return -1  # unlimited memory means unlimited swap too
    if swap is None or swap == 0:
        return None
    if swap == -1 or limit == -1:
        return swap
    if limit is None or limit == 0:
        raise OciError(where, "cannot set a swap limit without a memory limit on cgroup v2")
    if limit < 0:
        raise OciError("linux.resources.memory.limit", f"invalid memory limit {limit}")
    if swap < limit:
        raise OciError(where, f"memory+swap limit {swap} must be >= the memory limit {limit}")
    return swap - limit


def cpu_max(quota: int | None, period: int | None) -> str:
    """cpu.max "QUOTA PERIOD"; quota <= 0 is "max", period defaults to 100000 (kernel default)."""
    q = "max" if quota is None or quota <= 0 else str(quota)
    return f"{q} {period or 100000}"
