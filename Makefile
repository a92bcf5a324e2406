# kairos-firmware: the documented entry points are `make demo` and `make test` (README.md).
GO        ?= go
BIN       := bin/kairos-firmware
CACHE     := $(CURDIR)/.cache
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# The largest snapshot size the binary may reach (the issue's goal: 9 MiB).
MAX_BYTES := 9437184

export KAIROS_FIRMWARE_TEST_KERNEL := $(CACHE)/kernel/6.1.0-56-amd64

.PHONY: all build install deps kernel fixtures test vet fuzz bench demo clean

all: build

## build: the static, stripped binary (prints its size; fails above 9 MiB)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='$(LDFLAGS)' -o $(BIN) ./cmd/kairos-firmware
	@size=$$(stat -c %s $(BIN)); echo "$(BIN): $$size bytes ($$((size / 1024)) KiB, goal <= $$(($(MAX_BYTES) / 1024)) KiB)"; \
	  [ $$size -le $(MAX_BYTES) ] || { echo "$(BIN) is larger than $(MAX_BYTES) bytes" >&2; exit 1; }

## install: the binary and its boot integration (dist/) under DESTDIR
DESTDIR ?=
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)/usr/bin/kairos-firmware
	install -D -m 0755 dist/dracut/29kairos-firmware/module-setup.sh $(DESTDIR)/usr/lib/dracut/modules.d/29kairos-firmware/module-setup.sh
	install -D -m 0644 dist/dracut/29kairos-firmware/kairos-firmware.service $(DESTDIR)/usr/lib/dracut/modules.d/29kairos-firmware/kairos-firmware.service
	install -D -m 0644 dist/system/oem/35_kairos-firmware.yaml $(DESTDIR)/system/oem/35_kairos-firmware.yaml
	install -D -m 0644 dist/systemd/kairos-firmware-boot.service $(DESTDIR)/usr/lib/systemd/system/kairos-firmware-boot.service
	install -d $(DESTDIR)/usr/lib/systemd/system/sysinit.target.wants
	ln -sf ../kairos-firmware-boot.service $(DESTDIR)/usr/lib/systemd/system/sysinit.target.wants/kairos-firmware-boot.service

## deps: the Debian packages the tests and the demo need (apt-get, only what is missing)
deps:
	tests/fixtures/deps.sh

## kernel: Debian's real kernel (modules, metadata, vmlinuz), downloaded once into .cache/
kernel: deps
	tests/fixtures/debian-kernel.sh $(CACHE)/kernel

## fixtures: the kernel, and erofs-utils 1.8.6 built from source (mkfs.erofs with lzma,
## deflate and zstd), made once into .cache/
fixtures: kernel
	tests/fixtures/erofs-utils.sh $(CACHE)

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  [ -z "$$out" ] || { echo "gofmt would change: $$out" >&2; exit 1; }
	$(GO) vet ./...

## test: everything, real-kernel fixtures included; installs what it needs first
test: fixtures vet build
	$(GO) test -count=1 ./...

## fuzz: each fuzz target for a short while
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list 'Fuzz.*' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$target"; $(GO) test -run XXX -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; done

## bench: benchmarks with their figures (own time of detect on the largest recorded machine, ...)
bench: fixtures build
	$(GO) test -run XXX -bench . -benchmem ./...

## demo: the main job on a built-in demo
demo: kernel build
	tests/demo/demo.sh

clean:
	rm -rf bin
