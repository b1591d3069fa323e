# SPDX-License-Identifier: Apache-2.0
#
# The two commands users need: `make run` and `make test`. Everything else is for developers.
.PHONY: all bootstrap build debug run test unit fuzz-build fuzz-smoke integration bench format tidy clean

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

# Unit tests run under ASan+UBSan (build-debug); integration and interop tests run the
# release programs in build/bin; then every fuzz target runs for FUZZ_SECONDS.
test: build debug fuzz-build
	@scripts/test $(FUZZ_SECONDS)

fuzz-build: bootstrap
	@cmake --preset fuzz -DSLUICE_WERROR=$(WERROR) >/dev/null
	@cmake --build --preset fuzz -j $(JOBS)

fuzz-smoke: fuzz-build
	@scripts/fuzz-smoke $(FUZZ_SECONDS)

bench: build
	@bench/run-all

format:
	@git ls-files '*.h' '*.cc' | xargs clang-format -i

tidy: build
	@git ls-files 'src/*.cc' | xargs clang-tidy -p build --quiet

clean:
	rm -rf build build-debug build-fuzz build-tsan
