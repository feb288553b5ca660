# soakd — build, run, test. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
export GOTOOLCHAIN ?= local

# Go 1.26 has the goroutineleak profile behind an experiment (standard from
# 1.27): turn it on where the toolchain knows it, so leak evidence includes it.
GOEXPERIMENT ?= $(shell GOEXPERIMENT=goroutineleakprofile $(GO) env GOEXPERIMENT >/dev/null 2>&1 && echo goroutineleakprofile)
export GOEXPERIMENT

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -X main.version=$(VERSION) -X main.revision=$(REVISION)
BIN      := bin/soakd
STATE_DIR ?= ./soakd-state

PREFIX  ?= /usr/local
DESTDIR ?=
UNITDIR ?= /etc/systemd/system
CONFDIR ?= /etc/soakd

# Packages fast enough to test under the race detector on every run.
TEST_FLAGS ?= -race -count=1 -timeout 25m

.PHONY: help build build-k8s run test lint vet fmt-check install bench soak fuzz dashboards stack clean

DURATION ?= 2h

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/soakd
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/soakd

build-k8s: ## build bin/soakd with Chaos Mesh support (soakd chaos render; the image for deploy/kubernetes)
	$(GO) build -tags chaosmesh -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/soakd

run: build ## run the daemon on the embedded default config, state in ./soakd-state
	./$(BIN) run --state-dir $(STATE_DIR)

test: lint ## vet, gofmt check and every test (race detector on)
	$(GO) test $(TEST_FLAGS) ./...

lint: vet fmt-check ## go vet and gofmt

vet:
	$(GO) vet ./...
	$(GO) vet -tags chaosmesh ./cmd/soakd

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

install: build ## install binary, systemd unit and (if absent) the default config
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/soakd
	install -D -m 0644 systemd/soakd.service $(DESTDIR)$(UNITDIR)/soakd.service
	@if [ -e $(DESTDIR)$(CONFDIR)/soakd.yaml ]; then \
		echo "keeping existing $(DESTDIR)$(CONFDIR)/soakd.yaml"; \
	else \
		install -D -m 0644 systemd/soakd.yaml $(DESTDIR)$(CONFDIR)/soakd.yaml; \
	fi
	@echo "now: systemctl daemon-reload && systemctl enable --now soakd"

bench: ## benchmarks, printing their figures
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

soak: build ## a real soak of the default config for DURATION (2h), accelerated; prints its figures (RECORD=dir keeps the leak signals; RAFT_MODE=processes, PBFT_MODE=processes and MIGRATION_HOST_MODE=processes soak those nodes as processes)
	$(GO) run ./hack/soak -soakd $(BIN) -duration $(DURATION) $(if $(RECORD),-record $(RECORD)) $(if $(RAFT_MODE),-raft-mode $(RAFT_MODE)) $(if $(PBFT_MODE),-pbft-mode $(PBFT_MODE)) $(if $(MIGRATION_HOST_MODE),-migration-host-mode $(MIGRATION_HOST_MODE))

fuzz: ## fuzz the config loader for 60s
	$(GO) test ./internal/config/ -run '^$$' -fuzz FuzzParse -fuzztime 60s

dashboards: ## regenerate grafana/dashboards/*.json from grafana/dashboards.go
	$(GO) run ./grafana/gen -out grafana/dashboards

stack: ## Prometheus :9090 + Alertmanager :9093 on loopback, scraping soakd at 127.0.0.1:9477
	./grafana/stack.sh

clean:
	rm -rf bin
