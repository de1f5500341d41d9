# cgroup v2 tests in a VM: boots Debian's kernel under qemu with a pure cgroup v2
# hierarchy and runs pytest there on this tree (see tests/vm/README.md).
#   make test-cgroup2                                   # -m cgroup2 tests
#   make test-cgroup2 CGROUP2_TESTS="-m cgroup2 tests/test_cgroups_v2.py -x"
# Fails when the tests in the guest fail (exit 124: timeout, 125: the VM broke).
CGROUP2_MK_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
CGROUP2_TESTS ?= -m cgroup2 tests
# Built on the host first: the guest sees the host's tree (the native helper included)
# and keeps nothing. Set before the include, or CGROUP2_DEPS= to skip.
CGROUP2_DEPS ?= build

.PHONY: test-cgroup2
test-cgroup2: $(CGROUP2_DEPS)
	CGROUP2_WORKDIR="$(CURDIR)" "$(CGROUP2_MK_DIR)/../tests/vm/run-cgroup2.sh" $(CGROUP2_TESTS)

# The systemd cgroup driver, and clients using it, in a guest booted with systemd as PID 1 (pure v2),
# then a shorter run in systemd's hybrid layout (v1 controllers + cgroup2 at /sys/fs/cgroup/unified).
#   make test-systemd                                       # -m systemd tests, both layouts
#   make test-systemd SYSTEMD_TESTS="tests/test_systemd_driver.py -x"
SYSTEMD_TESTS ?= -p no:hypothesispytest -p no:benchmark -p no:cacheprovider -q -ra -m systemd tests
# On hybrid only what depends on the layout (paths in each v1 hierarchy, v1 files, freezer, devices).
SYSTEMD_HYBRID_TESTS ?= -p no:hypothesispytest -p no:benchmark -p no:cacheprovider -q -ra tests/test_systemd_driver.py \
	-k "scope or resources or update or pause or delete or exec or bad_resources"

.PHONY: test-systemd
test-systemd: $(CGROUP2_DEPS)
	CGROUP2_WORKDIR="$(CURDIR)" "$(CGROUP2_MK_DIR)/../tests/vm/run-cgroup2.sh" --systemd $(SYSTEMD_TESTS)
	CGROUP2_WORKDIR="$(CURDIR)" "$(CGROUP2_MK_DIR)/../tests/vm/run-cgroup2.sh" --systemd --hybrid $(SYSTEMD_HYBRID_TESTS)
