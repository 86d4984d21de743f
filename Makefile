# Convenience targets; the test suite itself is ./test.sh.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
PREFIX  ?= /usr/local

.PHONY: build test peers install clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/meridian ./cmd/meridian

test:
	./test.sh

# Installs the peer daemons the interop tests use (needs root).
peers:
	.ci/install-peers

install: build
	install -D -m 0755 bin/meridian $(DESTDIR)$(PREFIX)/bin/meridian
	install -D -m 0644 docs/man/meridian.1 $(DESTDIR)$(PREFIX)/share/man/man1/meridian.1

clean:
	rm -rf bin
