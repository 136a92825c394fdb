# ssehub — `make test` is the one test command (CI runs it through .ci/run).
GO       ?= go
CHROMIUM ?= /usr/bin/chromium
NGINX    ?= /usr/sbin/nginx
# The exact build the Dockerfile runs; cmd/ssehub/docker_test.go checks they agree.
BUILD_FLAGS = -trimpath -ldflags="-s -w"

.PHONY: all build run test test-deps lint vendor-vue bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build $(BUILD_FLAGS) -o bin/ssehub ./cmd/ssehub

run:
	$(GO) run ./cmd/ssehub

# golangci-lint runs the linters of .golangci.yml (STYLE.md's: vet,
# staticcheck, errcheck, errorlint, gofumpt). It is built once into
# bin/tools from the Go module proxy, at this version.
GOLANGCI_LINT_VERSION = v2.15.0
GOLANGCI_LINT = bin/tools/golangci-lint-$(GOLANGCI_LINT_VERSION)

# BENCH_BUILDS compiles what the bench scripts build, with their flags,
# into Go's build cache and nowhere else, so that the time limits of the
# scripts' tests do not have to cover a build from a cold cache.
BENCH_BUILDS = CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" ./cmd/ssehub github.com/nats-io/nats-server/v2 && \
	$(GO) build -o /dev/null ./cmd/ssebench

# test installs what the tests need where it is missing, lints, then runs
# every test: the demo page's (node), the bench scripts' (python3, which
# the scripts need; skipped where it is missing), then Go's.
test: test-deps lint
	node --test static/
	@if command -v python3 >/dev/null; then \
	  $(BENCH_BUILDS) && python3 -m unittest discover -s bench -p summarize_test.py; \
	else echo "python3 is missing: the bench scripts' tests skip"; fi
	$(GO) test -race -count=1 -timeout 20m ./...

# test-deps installs from the distribution's packages, when they are not
# there yet: headless Chromium for the browser tests; nginx for the test of
# the README's nginx recipe; Docker (dockerd and its CLI) for the image
# test, which starts its own dockerd when no engine answers. nginx and
# Docker are best effort: where they cannot be installed, their tests skip
# and say why.
test-deps:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  echo "installing chromium (Debian package) for the browser tests"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	fi
	@if [ ! -x "$(NGINX)" ]; then \
	  echo "installing nginx (Debian package) for the nginx recipe test"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  { $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nginx >/dev/null; } || \
	  echo "could not install nginx: the nginx recipe test will skip"; \
	fi
	@if ! { command -v docker && { command -v dockerd || docker version; }; } >/dev/null 2>&1; then \
	  echo "installing docker.io (Debian package) for the image test"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  { $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends docker.io >/dev/null; } || \
	  echo "could not install docker.io: the image test will skip"; \
	fi
	@command -v node >/dev/null || { echo "node is needed for static/ tests"; exit 1; }

lint: $(GOLANGCI_LINT)
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	@echo "building golangci-lint $(GOLANGCI_LINT_VERSION) into bin/tools"
	GOBIN=$(CURDIR)/bin/tools $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv bin/tools/golangci-lint $@

# vendor-vue refreshes static/vendor from the npm package vue.
vendor-vue:
	scripts/vendor-vue.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

clean:
	rm -rf bin
