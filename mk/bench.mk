# `make bench`: ocirun side by side with runc and crun (whichever are on PATH); see bench/README.md.
# Extra options go through BENCH_ARGS, e.g. make bench BENCH_ARGS="--quick --only run,exec".
BENCH_ARGS ?=
BENCH_TOPDIR := $(patsubst %/mk/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

.PHONY: bench
bench:
	python3 $(BENCH_TOPDIR)/bench/bench.py $(BENCH_ARGS)
