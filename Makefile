# Guest code: C sources beside their committed binaries under testdata/ and
# examples/. `make guests` rebuilds them; CI checks they are up to date.
#   X.c      -> X.wasm   (clang --target=wasm32)
#   X.bpf.c  -> X.bpf.o  (clang -target bpf)
#   X.wat    -> X.wasm   (wat2wasm)
CLANG ?= clang
SDK := sdk/c
WASM_CFLAGS := --target=wasm32 -O2 -nostdlib -ffreestanding -fno-builtin -I$(SDK) \
	-Wl,--no-entry -Wl,--strip-all -Wl,-z,stack-size=8192 -Wl,--initial-memory=65536
BPF_CFLAGS := -target bpf -mcpu=v3 -O2 -ffreestanding -I$(SDK)

GUEST_DIRS := $(shell find . -type d \( -name testdata -o -name examples -o -path ./bench/kernels \) -not -path './.git/*')
BPF_SRC := $(shell find $(GUEST_DIRS) -name '*.bpf.c' 2>/dev/null)
C_SRC := $(filter-out $(BPF_SRC),$(shell find $(GUEST_DIRS) -name '*.c' 2>/dev/null))
WAT_SRC := $(shell find $(GUEST_DIRS) -name '*.wat' 2>/dev/null)

GUESTS := $(C_SRC:.c=.wasm) $(BPF_SRC:.bpf.c=.bpf.o) $(WAT_SRC:.wat=.wasm)

.PHONY: guests check-guests test test-arm64 test-arm32 bench-fleet spectest
guests: $(GUESTS)

# A guest also depends on the C sources and headers beside it (X.bpf.c
# includes X.c; kernels share headers).
.SECONDEXPANSION:
# X.v1.bpf.c builds for the base eBPF ISA (what plain `clang -target bpf -O2`
# emits), so the runtime stays tested on it too.
%.v1.bpf.o: %.v1.bpf.c $(SDK)/tinycontainer.h $$(wildcard $$(dir $$*)*.c $$(dir $$*)*.h)
	$(CLANG) $(BPF_CFLAGS) -mcpu=v1 -c $< -o $@

%.bpf.o: %.bpf.c $(SDK)/tinycontainer.h $$(wildcard $$(dir $$*)*.c $$(dir $$*)*.h)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

%.wasm: %.c $(SDK)/tinycontainer.h $$(wildcard $$(dir $$*)*.h)
	$(CLANG) $(WASM_CFLAGS) $< -o $@

%.wasm: %.wat
	wat2wasm $< -o $@

# Rebuild every guest from scratch and fail if a committed binary differs.
check-guests:
	touch $(C_SRC) $(BPF_SRC) $(WAT_SRC)
	$(MAKE) guests
	git diff --exit-code -- $(GUESTS)
	@test -z "$$(git status --porcelain -- $(GUESTS))" || { echo "uncommitted guest binaries"; git status --short -- $(GUESTS); exit 1; }

test:
	go test -race ./...

# The whole WebAssembly spec suite (wazero's copy, in the module cache)
# through the instrumenter against plain wazero; `make test` runs a sample.
spectest:
	TC_SPEC_FULL=1 go test -count 1 -run TestSpecSuite ./runtime/wasm/instrument

# The eBPF runtime's arm64 code generator, tested on this machine under
# qemu-user (apt-get install qemu-user): every test of the package with the
# machine code, then interpreted, then 20,000 random programs compared
# across the engines (the fuzzing engine cannot run under qemu-user).
test-arm64:
	GOARCH=arm64 go test -c -o /tmp/tc-ebpf-arm64.test ./runtime/ebpf
	cd runtime/ebpf && TC_TEST_EMULATOR=qemu-aarch64 TC_EBPF_SINGLE_PASS=1 qemu-aarch64 /tmp/tc-ebpf-arm64.test -test.count 1 -test.skip TestAdversaryInstall
	cd runtime/ebpf && TC_TEST_EMULATOR=qemu-aarch64 TC_EBPF_INTERPRET=1 qemu-aarch64 /tmp/tc-ebpf-arm64.test -test.count 1 -test.skip TestAdversaryInstall
	cd runtime/ebpf && TC_EBPF_SINGLE_PASS=1 qemu-aarch64 /tmp/tc-ebpf-arm64.test -test.count 1 -test.run TestRandomPrograms -ebpf.random 20000
	GOARCH=arm64 go test -c -o /tmp/tc-conformance-arm64.test ./conformance
	cd conformance && qemu-aarch64 /tmp/tc-conformance-arm64.test -test.count 1

# Every package on 32-bit ARM (GOARM=7, a Raspberry Pi with a 32-bit OS)
# under qemu-user: the interpreters, 64-bit atomics' alignment, int sizes.
# The install-time adversary tests start their children through qemu-arm
# (TC_TEST_EMULATOR); the other tests that start a copy of their own
# binary, a binary they build (the README tests), or a browser, cannot run
# there.
test-arm32:
	TC_TEST_EMULATOR=qemu-arm GOARCH=arm GOARM=7 go test -count 1 -exec qemu-arm -skip 'TestCrashRecovery|TestDeviceEndToEnd|TestDeviceHTTP$$|TestBrowser|TestREADME' ./...

# The fleet's scale benchmark (not in CI): mosquitto on this machine, 1,000
# simulated devices (tinycontainer fleet simulate) in one process, the
# controller (tinycontainer fleet rollout) in another; a 13 KB image in a
# 5 % canary then 25 % waves with a 2 s health window, then a version that
# faults everywhere. Figures in BENCHMARKS.md.
bench-fleet:
	TC_FLEET_SCALE=1000 go test ./fleet/scale -run TestScale -v -count 1 -timeout 15m

# The noisy-neighbours soak (not in CI): a device process with 500
# containers of three tenants, one hostile, under management load for
# TC_SOAK_DURATION (default 10m) after TC_SOAK_WARMUP (default 3m), with a
# 112 MiB memory budget (TC_SOAK_MEMORY_LIMIT=SIZE|off); it checks the
# targets of BENCHMARKS.md ("Soak") and prints its figures.
.PHONY: soak
soak:
	go test -tags soak -run 'TestSoak$$' -count 1 -timeout 60m -v ./internal/soak

# `tinycontainer ps --json` of 1,000 containers from the command line (not
# in CI): builds the binary, starts it as a device on loopback, installs
# TC_PS_CONTAINERS (1000) containers, then times TC_PS_RUNS (30) ps
# processes alternating with `tinycontainer --version` (process start).
# Figures in BENCHMARKS.md.
.PHONY: ps1000
ps1000:
	go test -tags ps1000 -run 'TestPs1000$$' -count 1 -timeout 20m -v ./internal/psbench

# The README's test command while two busy loops keep both cores busy (the
# newcomer issue's bar: it must pass, each run within 15 minutes). Not in CI.
# The test cache is cleared first, so every run runs every test (a run
# that reused cached results would prove nothing); the build cache is kept.
.PHONY: test-busy
test-busy:
	go clean -testcache
	sh -c 'while :; do :; done' & b1=$$!; sh -c 'while :; do :; done' & b2=$$!; \
	start=$$(date +%s); go test -race ./...; rc=$$?; kill $$b1 $$b2; \
	echo "test-busy: exit $$rc after $$(( $$(date +%s) - start )) s"; exit $$rc
