# Sigil's build. `make test` is the one command that runs every test on a
# fresh Debian machine with Go and Node: it installs what is missing first.
SHELL := /bin/bash
GOLANGCI_VERSION := v2.15.0
PG_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
# Go modules: the server (root), the generated code, and the Go SDK, which
# applications import without the server's dependencies.
GO_MODULES := . gen sdk/go
# What the SDK must never pull in.
SDK_FORBIDDEN := pgx|sqlite|pkcs11|multi-party-sig|go-ethereum|prometheus|goose

.PHONY: all build test test-short deps gen checkgenerate lint tidy sdkdeps breaking fuzz bench clean vendor-protovalidate

all: build

build:
	go build -o bin/sigil ./cmd/sigil

## deps: install what the tests need (SoftHSM2, OpenSSL, Chromium, npm packages).
deps:
	@.ci/deps

## test: every test: Go (SQLite and PostgreSQL, SoftHSM2, MPC end to end) and TypeScript.
# The Go SDK's end-to-end tests against a real server live in the server's
# module (internal/sigiltest); the SDK module's own tests and its example
# program run here too.
test: deps
	go test -count=1 -timeout 30m ./...
	cd sdk/go && go build ./... && go test -count=1 ./...
	cd gen && go build ./...
	@if [ -f sdk/ts/package.json ]; then cd sdk/ts && npm test; fi

## test-short: the fast inner loop (no full MPC ceremonies).
test-short:
	go test -short ./...
	cd sdk/go && go test -short ./...

## gen: regenerate gen/go and gen/ts from proto/.
gen: node_modules
	npx buf generate

# Installs the npm tools only when they are missing: node_modules may be a
# symlink to a shared install, which `npm ci` would empty.
node_modules:
	@test -x node_modules/.bin/buf || npm ci --no-audit --no-fund

## checkgenerate: fail when regenerating changes anything.
checkgenerate: gen
	@test -z "$$(git status --porcelain -- gen)" || { echo "gen/ is stale: run 'make gen' and commit"; git status --porcelain -- gen; exit 1; }

## lint: buf lint and format, go vet, golangci-lint (server and SDK), go mod tidy, SDK dependencies.
lint: node_modules tidy sdkdeps
	npx buf lint
	npx buf format --diff --exit-code
	for m in $(GO_MODULES); do (cd $$m && go vet ./...) || exit 1; done
	@command -v golangci-lint >/dev/null 2>&1 || GOFLAGS= go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)
	PATH="$$PATH:$$(go env GOPATH)/bin" golangci-lint run --allow-parallel-runners ./...
	cd sdk/go && PATH="$$PATH:$$(go env GOPATH)/bin" golangci-lint run --allow-parallel-runners ./...

## tidy: fail when `go mod tidy` would change a module.
tidy:
	for m in $(GO_MODULES); do (cd $$m && go mod tidy -diff) || { echo "go.mod of $$m is not tidy: run 'go mod tidy' there"; exit 1; }; done

## sdkdeps: the Go SDK is its own module and pulls in no server library.
sdkdeps:
	@cd sdk/go && test "$$(go list -m)" = github.com/sigil-wallet/sigil/sdk/go
	@cd sdk/go && if go list -deps ./... | grep -E '$(SDK_FORBIDDEN)'; then echo "the Go SDK depends on server libraries (above)"; exit 1; fi

## breaking: buf breaking against the previous commit (skipped when it has no proto/).
breaking: node_modules
	@if git cat-file -e HEAD~1:proto 2>/dev/null; then npx buf breaking --against '.git#ref=HEAD~1'; else echo "no proto/ in HEAD~1: nothing to compare"; fi

## fuzz: run every fuzz target briefly (FUZZTIME=30s to go longer).
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$(go list ./...); do \
	  for f in $$(go test -list 'Fuzz.*' $$pkg 2>/dev/null | grep ^Fuzz); do \
	    echo "== $$pkg $$f"; go test -run XXX -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

## bench: the benchmarks the issues name (MPC full stack vs in-process; HSM throughput,
## on SQLite and, when SIGIL_TEST_POSTGRES is set, on PostgreSQL).
bench: build
	bin/sigil bench mpc
	bin/sigil bench hsm
	@if [ -n "$$SIGIL_TEST_POSTGRES" ]; then bin/sigil bench hsm --database-url "$$SIGIL_TEST_POSTGRES"; fi

vendor-protovalidate:
	go mod download github.com/bufbuild/protovalidate@v1.2.2
	cp "$$(go env GOMODCACHE)/github.com/bufbuild/protovalidate@v1.2.2/proto/protovalidate/buf/validate/validate.proto" third_party/protovalidate/buf/validate/
	cp "$$(go env GOMODCACHE)/github.com/bufbuild/protovalidate@v1.2.2/LICENSE" third_party/protovalidate/
	chmod 644 third_party/protovalidate/LICENSE third_party/protovalidate/buf/validate/validate.proto

clean:
	rm -rf bin
