"""Device rules -> BPF_PROG_TYPE_CGROUP_DEVICE instructions (csrc/cgroup_devices.c), checked by a tiny
interpreter against the reference semantics (per access bit, the last matching rule wins; default deny)."""

from __future__ import annotations

import random

from ocirun import _native
from ocirun.cgroups import devices
from ocirun.cgroups.devices import Rule

BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
LDX_W, ALU_AND_K, ALU_RSH_K, ALU_MOV_X, ALU64_MOV_K = 0x61, 0x54, 0x74, 0xBC, 0xB7
JNE_K, JEQ_K, EXIT = 0x55, 0x15, 0x95


Insn = tuple[int, int, int, int, int]


def run(insns: list[Insn], dev_type: int, access: int, major: int, minor: int) -> int:
    """Execute the subset of eBPF the generator emits on a struct bpf_cgroup_dev_ctx."""
    ctx = {0: dev_type | (access << 16), 4: major, 8: minor}
    reg = [0] * 11
    pc = 0
    seen = 0
    while True:
        seen += 1
        assert seen < 10000, "loop"
        code, dst, src, off, imm = insns[pc]
        pc += 1
        if code == LDX_W:
            assert src == 1
            reg[dst] = ctx[off]
        elif code == ALU_AND_K:
            reg[dst] = (reg[dst] & (imm & 0xFFFFFFFF)) & 0xFFFFFFFF
        elif code == ALU_RSH_K:
            reg[dst] = (reg[dst] & 0xFFFFFFFF) >> imm
        elif code == ALU_MOV_X:
            reg[dst] = reg[src] & 0xFFFFFFFF
        elif code == ALU64_MOV_K:
            reg[dst] = imm
        elif code == JNE_K:
            if reg[dst] != imm:
                pc += off
        elif code == JEQ_K:
            if reg[dst] == imm:
                pc += off
        elif code == EXIT:
            return reg[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def reference(rules: list[Rule], dev_type: str, access: int, major: int, minor: int) -> int:
    pending = access
    for r in reversed(rules):
        if r.type != "a" and r.type != dev_type:
            continue
        if r.major >= 0 and r.major != major:
            continue
        if r.minor >= 0 and r.minor != minor:
            continue
        bits = r.access_bits()
        if r.allow:
            pending &= ~bits
            if pending == 0:
                return 1
        elif pending & bits:
            return 0
    return 0


DEFAULTS = [
    {"type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"type": "c", "major": 136, "access": "rwm"},
    {"type": "c", "major": 5, "minor": 2, "access": "rwm"},
]


def test_prologue_and_default_deny() -> None:
    insns = devices.bpf_instructions([])
    assert insns[:6] == [
        (LDX_W, 2, 1, 0, 0), (ALU_AND_K, 2, 0, 0, 0xFFFF),
        (LDX_W, 3, 1, 0, 0), (ALU_RSH_K, 3, 0, 0, 16),
        (LDX_W, 4, 1, 4, 0), (LDX_W, 5, 1, 8, 0),
    ]
    assert insns[6:] == [(ALU64_MOV_K, 0, 0, 0, 0), (EXIT, 0, 0, 0, 0)]


def test_one_allow_block_layout() -> None:
    rules = devices.build_rules([{"allow": False, "access": "rwm"}], [{"type": "c", "major": 1, "minor": 3,
                                                                        "access": "rw"}])
    insns = devices.bpf_instructions(rules)[6:]
    assert insns == [
        (JNE_K, 2, 0, 6, BPF_DEVCG_DEV_CHAR),
        (JNE_K, 4, 0, 5, 1),
        (JNE_K, 5, 0, 4, 3),
        (ALU_AND_K, 3, 0, 0, 1),  # clear r|w from the pending bits, m (1) stays
        (JNE_K, 3, 0, 2, 0),
        (ALU64_MOV_K, 0, 0, 0, 1),
        (EXIT, 0, 0, 0, 0),
        # the first rule (deny all) is unconditional: it ends the program, no default block after it
        (ALU64_MOV_K, 0, 0, 0, 0),
        (EXIT, 0, 0, 0, 0),
    ]


def test_unconditional_rule_stops_generation() -> None:
    """Code after an unconditional block is unreachable and the verifier refuses it."""
    rules = devices.build_rules([{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 1,
                                                                    "minor": 3, "access": "rwm"}], [])
    insns = devices.bpf_instructions(rules)
    assert insns[-2:] == [(ALU64_MOV_K, 0, 0, 0, 1), (EXIT, 0, 0, 0, 0)]
    assert sum(1 for i in insns if i[0] == EXIT) == 2
    assert run(insns, BPF_DEVCG_DEV_CHAR, 2, 1, 3) == 0
    assert run(insns, BPF_DEVCG_DEV_CHAR, 2, 1, 5) == 1


def test_partial_access_semantics() -> None:
    rules = devices.build_rules(
        [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "w"},
            {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"},
            {"allow": True, "type": "c", "major": 1, "access": "rw"},
        ],
        [],
    )
    insns = devices.bpf_instructions(rules)
    r, w, m = 2, 4, 1
    assert run(insns, BPF_DEVCG_DEV_CHAR, r | w, 1, 3) == 1  # two allow rules together cover rw
    assert run(insns, BPF_DEVCG_DEV_CHAR, m, 1, 3) == 0
    assert run(insns, BPF_DEVCG_DEV_CHAR, w, 1, 5) == 1  # later "c 1:* rw" allow wins over the w deny
    assert run(insns, BPF_DEVCG_DEV_BLOCK, r, 1, 3) == 0


def test_matches_reference_on_random_rule_lists() -> None:
    rng = random.Random(1234)
    for _ in range(300):
        spec = []
        for _ in range(rng.randint(0, 7)):
            spec.append({
                "allow": rng.random() < 0.6,
                "type": rng.choice(["a", "b", "c"]),
                "major": rng.choice([None, 1, 5, 8]),
                "minor": rng.choice([None, 0, 3, 5]),
                "access": "".join(c for c in "rwm" if rng.random() < 0.6) or "r",
            })
        rules = devices.build_rules(spec, DEFAULTS if rng.random() < 0.5 else [])
        insns = devices.bpf_instructions(rules)
        for t_name, t in (("c", BPF_DEVCG_DEV_CHAR), ("b", BPF_DEVCG_DEV_BLOCK)):
            for major in (1, 5, 8, 136):
                for minor in (0, 3, 5):
                    for acc in range(1, 8):
                        want = reference(rules, t_name, acc, major, minor)
                        assert run(insns, t, acc, major, minor) == want, (spec, t_name, major, minor, acc)


def test_native_rejects_bad_rules() -> None:
    ffi, lib = _native.ffi, _native.lib
    out = ffi.new("struct ocirun_bpf_insn[]", 64)
    arr = ffi.new("struct ocirun_dev_rule[]", 1)
    arr[0].allow, arr[0].type, arr[0].major, arr[0].minor, arr[0].access = 1, ord("x"), 1, 1, 7
    assert lib.ocirun_devcg_build(arr, 1, out, 64) == -22  # EINVAL
    arr[0].type, arr[0].major = ord("c"), 2**40
    assert lib.ocirun_devcg_build(arr, 1, out, 64) == -34  # ERANGE
    arr[0].major = 1
    assert lib.ocirun_devcg_build(arr, 1, out, 3) == -28  # ENOSPC: buffer too small


def test_statfs_helpers() -> None:
    lib = _native.lib
    assert lib.ocirun_cg_statfs_magic(b"/nonexistent-dir-for-ocirun") == -2
    assert lib.ocirun_cg_statfs_magic(b"/proc") == 0x9FA0  # PROC_SUPER_MAGIC
