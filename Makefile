# Quantscope — the two commands of the README contract, and friends.
#   make run      install missing packages, build, open the workbench on the bundled sample model
#   make test     install missing packages, build, run the whole test suite headless
#   make asan     the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz     build the libFuzzer harnesses with clang and run each for FUZZ_SECONDS
#   make bench    build and run the benchmarks (figures go to docs/performance.md by hand)
#   make package  build the .deb with CPack

PRESET ?= $(if $(CI),ci,default)
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
SAMPLE ?= resources/samples/stories260K/stories260K.gguf
BUILD_DIR := build

.PHONY: all deps configure build run test asan fuzz bench package clean

all: build

deps:
	@scripts/install-deps.sh

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ] || [ "$$(cat $(BUILD_DIR)/.preset 2>/dev/null)" != "$(PRESET)" ]; then \
		cmake --preset $(PRESET) && echo $(PRESET) > $(BUILD_DIR)/.preset; fi

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] || [ -n "$$QT_QPA_PLATFORM" ]; then \
		$(BUILD_DIR)/bin/quantscope $(SAMPLE); \
	else \
		echo "No display found: running under xvfb-run (screenshots only)."; \
		xvfb-run -a $(BUILD_DIR)/bin/quantscope $(SAMPLE); \
	fi

test: build
	cd $(BUILD_DIR) && QT_QPA_PLATFORM=offscreen ctest --output-on-failure -j $(JOBS)

asan: deps
	cmake --preset asan
	cmake --build build-asan -j $(JOBS)
	cd build-asan && QT_QPA_PLATFORM=offscreen ASAN_OPTIONS=detect_leaks=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

fuzz:
	@scripts/install-deps.sh --fuzz
	cmake --preset fuzz
	cmake --build build-fuzz -j $(JOBS)
	scripts/run-fuzzers.sh build-fuzz/fuzz $(FUZZ_SECONDS)

bench: build
	@for b in $(BUILD_DIR)/bench/bench_*; do echo "== $$b"; $$b; done

# A separate Release build configured for /usr, so that compiled-in data paths match the package.
package: deps
	cmake --preset package
	cmake --build build-package -j $(JOBS)
	cd build-package && cpack

clean:
	rm -rf build build-asan build-fuzz
