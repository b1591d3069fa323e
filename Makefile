# SPDX-License-Identifier: Apache-2.0
#
# The two commands users need: `make run` and `make test`. Everything else is for developers.
.PHONY: all bootstrap build debug tsan-build run test unit fuzz-build fuzz-smoke integration bench soak format format-check tidy tidy-changed clean

JOBS ?= $(shell nproc)
# CI (CI=true in the environment) turns warnings into errors.
WERROR ?= $(if $(CI),ON,OFF)
FUZZ_SECONDS ?= 30
RUN_ARGS ?=

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake --preset release -DSLUICE_WERROR=$(WERROR) >/dev/null
	@cmake --build --preset release -j $(JOBS)

debug: bootstrap
	@cmake --preset debug -DSLUICE_WERROR=$(WERROR) >/dev/null
	@cmake --build --preset debug -j $(JOBS)

run: build
	scripts/run $(RUN_ARGS)

# The unit tests of the modules with threads of their own (WAL group commit, state journal,
# broker shards, the pipeline runner with its retry and fencing paths), built with
# ThreadSanitizer; only these targets, to keep CI's time.
TSAN_TARGETS = bus_tests broker_tests broker_persist_tests pipeline_runner_tests
tsan-build: bootstrap
	@cmake --preset tsan -DSLUICE_WERROR=$(WERROR) >/dev/null
	@cmake --build --preset tsan -j $(JOBS) --target $(TSAN_TARGETS)

# First what is configured is enforced, cheapest first: clang-format (format-check) and
# clang-tidy on the code changed since .ci/tidy-base (tidy-changed). Then unit tests run
# under ASan+UBSan (build-debug) and the threaded modules' unit tests again under TSan
# (build-tsan); integration and interop tests run the release programs in build/bin; then
# every fuzz target runs for FUZZ_SECONDS.
test: format-check build tidy-changed debug tsan-build fuzz-build
	@scripts/test $(FUZZ_SECONDS)

fuzz-build: bootstrap
	@cmake --preset fuzz -DSLUICE_WERROR=$(WERROR) >/dev/null
	@cmake --build --preset fuzz -j $(JOBS)

fuzz-smoke: fuzz-build
	@scripts/fuzz-smoke $(FUZZ_SECONDS)

bench: build
	@bench/run-all

# The soak test of issue 10 (bench/macro/soak/run): publishers, fast and slow subscribers,
# session takeovers and hostile clients against one sluice and a private PostgreSQL for
# SOAK_SECONDS (default 600, e.g. `SOAK_SECONDS=120 make soak`); fails unless every
# acknowledged reading is stored exactly once, RSS stays bounded and the well-behaved
# publishers' rate holds. Not part of `make test` or `make bench`.
SOAK_SECONDS ?= 600
soak: build
	@SOAK_SECONDS=$(SOAK_SECONDS) bench/macro/soak/run

format:
	@git ls-files '*.h' '*.cc' | xargs clang-format -i

# Fails (naming the files) when a tracked C++ file differs from `make format`'s output.
format-check: bootstrap
	@scripts/format-check

tidy: build
	@git ls-files 'src/*.cc' | xargs clang-tidy -p build --quiet

# clang-tidy on the .cc files changed since the commit in .ci/tidy-base; any finding fails.
tidy-changed: build
	@scripts/tidy-changed

clean:
	rm -rf build build-debug build-fuzz build-tsan
