# leaktrace: build, regenerate BPF bindings, test.
GO      ?= go
BIN     ?= bin/leaktrace
# A static binary: no libc threads in Go's own stacks, runs in any container.
export CGO_ENABLED ?= 0

.PHONY: build generate check-generated test test-short portable bench bench-smoke demo fuzz vet vmtest clean verifier-report

build:
	$(GO) build -trimpath -buildvcs=auto -o $(BIN) ./cmd/leaktrace

# Needs clang, llvm and libbpf-dev (apt-get install -y clang llvm libbpf-dev bpftool).
generate:
	cd bpf && $(GO) generate ./...

# CI: the committed bindings must be what the sources generate.
check-generated: generate
	git diff --exit-code -- bpf/

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# Everything builds on any OS (the pure packages are the point; the rest
# says what needs Linux with build tags): checked on darwin.
portable:
	GOOS=darwin $(GO) build ./...

# The tests CI runs: as root they load the real BPF programs.
test: vet portable
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 40m ./...

test-short:
	$(GO) test -count=1 -short ./...

# Overhead, peers, aggregator throughput and memory, lost events, attach time:
# a markdown table on stdout (the README's Performance section), JSON in bin/.
# As root; installs strace and bpftrace when missing. Reports, never fails on
# a figure.
bench: build
	$(GO) run ./bench -leaktrace $(BIN) -go $(GO) -install-peers -json bin/bench-results.json

# The same at reduced sizes, one repetition, under a minute (CI runs it).
bench-smoke: build
	$(GO) run ./bench -leaktrace $(BIN) -go $(GO) -smoke -json bin/bench-smoke.json

# The verifier's own figures for every program at every setting (as root).
verifier-report: build
	$(BIN) verifier-report

demo: build
	sudo $(BIN) demo

# The kernel matrix: Debian's cloud kernels (pinned in vmtest/kernels.go,
# fetched once into /var/cache/leaktrace-vmtest) booted under QEMU with TCG,
# a smoke test of the static binary in each, a table at the end. As root;
# needs qemu-system-x86, gcc and libc6-dev. VMTEST_FLAGS: e.g. -kernels 6.1,7.3.
vmtest:
	$(GO) run ./vmtest $(VMTEST_FLAGS)

# A short run of every fuzz target.
fuzz:
	./scripts/fuzz-all.sh 10s

clean:
	rm -rf bin
