# The two commands: `make run` and `make test`. Both install dependencies first (a no-op when
# present), configure and build as needed. Everything else is plain CMake presets.
JOBS ?= 2
KEEL_ARGS ?= serve
FUZZ_SECONDS ?= 60

.PHONY: run test deps build build-asan build-variants test-release test-asan fuzz tsan format clean

# Builds only the keel program (not the tests and benchmarks) before starting it.
run: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS) --target keel_cli
	./build/release/keel $(KEEL_ARGS)

# The fuzz step builds libkeel with clang and -Werror too (scripts/fuzz.sh), so both compilers'
# warnings are checked here.
test: deps
	$(MAKE) test-release
	$(MAKE) test-asan
	$(MAKE) fuzz FUZZ_SECONDS=10

# libkeel as a user builds it (plain Release, the compiler's defaults, no -Werror) and with
# clang in Release, warnings as errors (not in `make test`, which keeps to its time budget).
build-variants: deps
	cmake -S . -B build/plain-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_BUILD_TESTS=OFF \
		-DKEEL_BUILD_APP=OFF -DKEEL_BUILD_BENCH=OFF
	cmake --build build/plain-release -j $(JOBS)
	CXX=clang++ cmake -S . -B build/clang -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEEL_WERROR=ON \
		-DKEEL_BUILD_TESTS=OFF -DKEEL_BUILD_APP=OFF -DKEEL_BUILD_BENCH=OFF
	cmake --build build/clang -j $(JOBS)

deps:
	bash scripts/install-deps.sh

build: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS)

build-asan: deps
	cmake --preset asan
	cmake --build --preset asan -j $(JOBS)

test-release: build
	ctest --preset release -j $(JOBS)

test-asan: build-asan
	ctest --preset asan -j $(JOBS)

# Every libFuzzer target (tests/fuzz) for FUZZ_SECONDS each, two at a time, under clang with
# ASan and UBSan, on a scratch copy of its seeds; fails on any finding (scripts/fuzz.sh).
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(JOBS) bash scripts/fuzz.sh

# ThreadSanitizer run of the suite (not part of `make test`; run it on threading changes).
tsan: deps
	cmake --preset tsan
	cmake --build --preset tsan -j $(JOBS)
	ctest --preset tsan -j $(JOBS)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build
