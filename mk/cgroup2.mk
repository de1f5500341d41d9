# cgroup v2 tests in a VM: boots Debian's kernel under qemu with a pure cgroup v2
# hierarchy and runs pytest there on this tree (see tests/vm/README.md).
#   make test-cgroup2                                   # -m cgroup2 tests
#   make test-cgroup2 CGROUP2_TESTS="-m cgroup2 tests/test_cgroups.py -x"
# Fails when the tests in the guest fail (exit 124: timeout, 125: the VM broke).
CGROUP2_MK_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
CGROUP2_TESTS ?= -m cgroup2 tests

.PHONY: test-cgroup2
test-cgroup2:
	CGROUP2_WORKDIR="$(CURDIR)" "$(CGROUP2_MK_DIR)/../tests/vm/run-cgroup2.sh" $(CGROUP2_TESTS)
