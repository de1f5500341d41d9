# ocirun: `make run` installs, builds, makes the example bundle and runs it; `make test` runs every test.
PY ?= python3
PREFIX ?= /usr/local
BUNDLE ?= bundles/busybox
APT_PACKAGES := busybox-static libseccomp-dev libcap-dev gcc musl-tools make iproute2 procps runc crun python3.11 libpython3.11-dev strace
PIP_PACKAGES := cffi pyseccomp jsonschema pytest ruff

.PHONY: all deps build install uninstall bundle run test test-unit test-integration lint clean
all: install

# Install only what is missing: apt-get update alone costs several seconds.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "apt-get install$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
	@$(PY) -c "import cffi, pyseccomp, jsonschema, pytest" 2>/dev/null || \
	  $(PY) -m pip install -q --root-user-action=ignore $(PIP_PACKAGES)
	@command -v ruff >/dev/null || $(PY) -m pip install -q --root-user-action=ignore ruff

build: deps
	$(PY) -m ocirun._build_c

# Self-contained: the package is copied to $(PREFIX)/lib/ocirun; the checkout can move or go afterwards.
install: build
	$(PY) tools/install_launcher.py --prefix $(PREFIX)

uninstall:
	$(PY) tools/install_launcher.py --uninstall --prefix $(PREFIX)

bundle: deps
	@test -d $(BUNDLE)/rootfs || $(PY) bundles/mkbundle.py $(BUNDLE) --args \
	  'sh -c "echo hostname: $$(hostname); echo pid: $$$$; echo namespaces:; ls -l /proc/self/ns | sed -n \"s/.* \\([a-z_]*\\) -> /  \\1 /p\""'

run: install bundle
	ocirun run --bundle $(BUNDLE) ocirun-demo-$$$$

lint: deps
	ruff check ocirun tests bundles tools spec-conformance bench

# The cgroup v2 half runs in a qemu guest with a pure cgroup v2 kernel (mk/cgroup2.mk, tests/vm/).
CGROUP2_TESTS ?= -p no:hypothesispytest -p no:benchmark -p no:cacheprovider -q -ra tests/test_cgroup2_container.py \
	tests/test_cgroups_v2.py tests/vm/test_guest_cgroup2.py tests/test_lifecycle.py tests/test_state.py
CGROUP2_DEPS ?=

test: install lint
	$(PY) -m pytest -q -ra tests spec-conformance
	$(MAKE) --no-print-directory test-cgroup2
	$(MAKE) --no-print-directory test-systemd

clean:
	rm -rf ocirun/_native*.so ocirun/_native.c ocirun/ocirun-init csrc/*.o build $(BUNDLE) ocirun/__pycache__ ocirun/cgroups/__pycache__

-include mk/*.mk
