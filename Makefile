# Corral build. Everything a newcomer needs is `make run` and `make test`.
GO        ?= go
BIN       := bin
GOFLAGS   := -trimpath
LDFLAGS   := -s -w
STATIC    := CGO_ENABLED=0
PREFIX    ?= /usr
DESTDIR   ?=

.PHONY: all build run test unit-test integration-test bench lint proto install clean deps

all: build

build:
	$(STATIC) $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/corral ./cmd/corral
	$(STATIC) $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/corral-agent ./cmd/corral-agent
	$(STATIC) $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/corralctl ./cmd/corralctl

# run starts the supervisor in the foreground with the example units.
run: build
	hack/run.sh

# deps installs what the tests need on a fresh Debian machine (idempotent).
deps:
	hack/deps.sh

test: deps lint build
	$(GO) test -count=1 -timeout 30m -tags integration ./...
	$(MAKE) e2e

bench: build
	hack/bench/run.sh

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

proto:
	hack/proto.sh

install: build
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/corral
	install -m 0755 $(BIN)/corral $(DESTDIR)$(PREFIX)/sbin/corral
	install -m 0755 $(BIN)/corral-agent $(DESTDIR)$(PREFIX)/sbin/corral-agent
	install -m 0755 $(BIN)/corralctl $(DESTDIR)$(PREFIX)/bin/corralctl
	if [ -f build/vm/vmlinux ]; then \
		install -d $(DESTDIR)$(PREFIX)/lib/corral/vm && \
		install -m 0644 build/vm/vmlinux build/vm/initrd.img $(DESTDIR)$(PREFIX)/lib/corral/vm/; \
	fi

clean:
	rm -rf $(BIN)

# e2e drives Corral's CRI socket with the real crictl, critest, kubelet and
# containerd (built and cached by hack/tools; see test/e2e and
# docs/CONFORMANCE.md).
.PHONY: e2e
e2e: build
	hack/e2e-deps.sh
	$(GO) test -count=1 -timeout 60m -tags e2e ./test/...

# vm-assets builds the VM pods' guest kernel, initramfs (with the guest
# agent as /init) and busybox image into build/vm (cached; see hack/vm).
.PHONY: vm-assets
vm-assets:
	hack/vm/assets.sh $(CURDIR)/build/vm
