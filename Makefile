# lockmgr: every entry point a person or CI uses. See README.rst.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null)
BIN       ?= bin
PREFIX    ?= /usr
DESTDIR   ?=
BACKENDS  := flock posix ofd
MODULES   := core $(addprefix backends/,$(BACKENDS)) cli
PKGS      := $(addsuffix /...,$(addprefix ./,$(MODULES)))
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
GOBUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
FUZZTIME  ?= 10s
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1

.PHONY: all build demo test test-unit fuzz lint bench proto man install clean

all: build

## build: every binary into bin/, the plugins beside the CLI (where it looks first)
build:
	@mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/lockmgr ./cli
	@for b in $(BACKENDS); do \
		echo "$(GOBUILD) -o $(BIN)/lockmgr-backend-$$b ./backends/$$b"; \
		$(GOBUILD) -o $(BIN)/lockmgr-backend-$$b ./backends/$$b || exit 1; \
	done

## demo: lockmgr's main job, two processes contending for one lock
demo: build
	@./examples/demo.sh $(BIN)/lockmgr

## test: lint, every module's tests with the race detector, short fuzz runs
test: lint test-unit fuzz

test-unit:
	$(GO) test -race -count=1 $(PKGS)

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./core/config
	$(GO) test -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime $(FUZZTIME) ./core/backend

## lint: gofmt and go vet must be clean
lint:
	@out=$$(gofmt -l $(MODULES) | grep -v '\.pb\.go$$'); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## bench: the benchmark table (Go benchmarks through benchstat, hyperfine for whole commands)
bench:
	@./bench/run.sh

## proto: regenerate core/lockpb from its .proto (needs Debian's protobuf-compiler)
proto:
	GOBIN=$(CURDIR)/.cache/bin $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/.cache/bin $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH=$(CURDIR)/.cache/bin:$$PATH protoc --proto_path=core/lockpb \
		--go_out=core/lockpb --go_opt=paths=source_relative \
		--go-grpc_out=core/lockpb --go-grpc_opt=paths=source_relative \
		core/lockpb/lockmgr.proto

clean:
	rm -rf $(BIN) .cache dist
