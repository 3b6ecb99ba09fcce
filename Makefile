# lockmgr: every entry point a person or CI uses. See README.rst.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null)
BIN       ?= bin
PREFIX    ?= /usr
DESTDIR   ?=
BACKENDS  := flock posix ofd etcd
MODULES   := core $(addprefix backends/,$(BACKENDS)) cli examples
PKGS      := $(addsuffix /...,$(addprefix ./,$(MODULES)))
# A package build adds its own linker flags (GOLDFLAGS, e.g. -bindnow) and may
# set CGO_ENABLED; GOFLAGS from the environment reaches go build as it is
# (packaging/PKGBUILD sets -buildmode=pie there). Unset, the binaries are
# static, as the releases are.
GOLDFLAGS   ?=
CGO_ENABLED ?= 0
# GOSTRIP drops the symbol table and DWARF at link time, as the releases
# do. A package build sets GOSTRIP= and lets its own tools strip the
# binaries and split the debug info out (makepkg's lockmgr-debug package,
# which -s -w would leave empty).
GOSTRIP   ?= -s -w
LDFLAGS   := $(GOSTRIP) -X main.version=$(VERSION) -X main.commit=$(COMMIT) $(GOLDFLAGS)
GOBUILD   := CGO_ENABLED=$(CGO_ENABLED) $(GO) build -trimpath -tags grpcnotrace -ldflags '$(strip $(LDFLAGS))'
# lockmgr's own amd64 entry point records the signals its caller ignored
# or blocked before the Go runtime takes them over; a cgo build records
# them in a C constructor instead, and the plugins need neither.
# cli/signals.go says why, and what a build with neither loses.
GOARCH_   := $(shell $(GO) env GOARCH)
CLIENTRY  := $(if $(and $(filter 0,$(CGO_ENABLED)),$(filter amd64,$(GOARCH_))),-E=main.lockmgrEntry)
GOBUILDCLI := CGO_ENABLED=$(CGO_ENABLED) $(GO) build -trimpath -ldflags '$(strip $(LDFLAGS) $(CLIENTRY))'
# The lockmgr command links no go-plugin and no gRPC (lockmgr_sharedonly):
# their package initialisation was most of a command's start-up. It
# reaches the user's shared plugins itself and execs lockmgr-full, the
# same command built whole, for a private one (cli/fullbuild.go).
CLITAGS     := lockmgr_sharedonly
FULLCLITAGS := grpcnotrace
# A count of inputs, not a duration: with a duration, Go 1.26's fuzzing
# coordinator can fail a target at the deadline with "context deadline
# exceeded" and no failing input (golang/go#75804, fixed in Go 1.27), as
# it did in CI on a busy machine. 200,000 inputs take 4 to 15 s per
# target on an idle 2-core machine.
FUZZTIME  ?= 200000x
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1

.PHONY: all build demo test test-unit fuzz lint bench proto man install install-only clean completions release-snapshot package-check docs

all: build

## build: every binary into bin/, lockmgr-full and the plugins beside the CLI (where it looks first)
build:
	@mkdir -p $(BIN)
	$(GOBUILDCLI) -tags $(CLITAGS) -o $(BIN)/lockmgr ./cli
	$(GOBUILDCLI) -tags $(FULLCLITAGS) -o $(BIN)/lockmgr-full ./cli
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
	$(GO) test -run '^$$' -fuzz '^FuzzHostDispatch$$' -fuzztime $(FUZZTIME) ./core/pluginrpc
	$(GO) test -run '^$$' -fuzz '^FuzzPluginDispatch$$' -fuzztime $(FUZZTIME) ./core/pluginrpc

## lint: gofmt and go vet must be clean
lint:
	@out=$$(gofmt -l $(MODULES) | grep -v '\.pb\.go$$'); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags mangen ./cli
	$(GO) vet -tags lockmgr_sharedonly ./core/... ./cli/...

## bench: the benchmark table (Go benchmarks through benchstat, hyperfine for whole commands)
# A failed build only drops the CLI's row: the Go benchmarks build their own plugin.
bench:
	@if $(MAKE) --no-print-directory build; then cli=$(BIN)/lockmgr; \
	else echo "bench: make build failed; benchmarking without the CLI" >&2; cli=; fi; \
	GO=$(GO) backends/flock/testdata/bench/run.sh $$cli

## proto: regenerate core/lockpb and core/lockpb/controlpb from their .proto files (needs Debian's protobuf-compiler)
proto:
	GOBIN=$(CURDIR)/.cache/bin $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/.cache/bin $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH=$(CURDIR)/.cache/bin:$$PATH protoc --proto_path=core/lockpb \
		--go_out=core/lockpb --go_opt=paths=source_relative \
		--go-grpc_out=core/lockpb --go-grpc_opt=paths=source_relative \
		core/lockpb/lockmgr.proto core/lockpb/controlpb/control.proto

clean:
	rm -rf $(BIN) .cache dist docs/_generated out

# Release and packaging. Generated files (man pages, completions) go under
# GENDIR, laid out as they are installed below PREFIX, so that `make
# install`, the release archives and the packages all copy one tree.
GENDIR     ?= .cache/release
SYSCONFDIR ?= /etc
MANDIR     ?= $(PREFIX)/share/man
ifeq ($(strip $(GENDIR)),)
$(error GENDIR must name a directory for generated files)
endif

## man: the man pages, from the command tree, gzipped into $(GENDIR)/share/man/man1,
## and the hand-written section 5 pages of docs/man into man5
# SOURCE_DATE_EPOCH, if set, dates them (goreleaser and makepkg set it).
man:
	rm -rf $(GENDIR)/share/man
	$(GO) run -tags mangen -ldflags '-X main.version=$(VERSION)' ./cli man $(GENDIR)/share/man/man1
	gzip -9nf $(GENDIR)/share/man/man1/*.1
	install -Dm644 docs/man/lockmgr.toml.5 docs/man/lockmgr-etcd.5 -t $(GENDIR)/share/man/man5
	gzip -9nf $(GENDIR)/share/man/man5/*.5

## completions: bash, zsh and fish completion scripts into $(GENDIR)/share
completions:
	@mkdir -p $(GENDIR)/share/bash-completion/completions $(GENDIR)/share/zsh/site-functions \
		$(GENDIR)/share/fish/vendor_completions.d
	$(GO) run ./cli completion bash > $(GENDIR)/share/bash-completion/completions/lockmgr
	$(GO) run ./cli completion zsh > $(GENDIR)/share/zsh/site-functions/_lockmgr
	$(GO) run ./cli completion fish > $(GENDIR)/share/fish/vendor_completions.d/lockmgr.fish

## install: lockmgr, its full build and plugins in $(PREFIX)/lib/lockmgr (where ../lib/lockmgr from
## the binary finds them), man pages, completions, the license, and
## $(SYSCONFDIR)/lockmgr/config.toml unless one is there already: the layout of the packages
install: build man completions
	@$(MAKE) --no-print-directory install-only

## install-only: install what build, man and completions made, building nothing
## (a package's package() step, which runs under fakeroot after build())
LICENSEDIR ?= $(PREFIX)/share/licenses/lockmgr
install-only:
	@for f in $(BIN)/lockmgr $(BIN)/lockmgr-full $(addprefix $(BIN)/lockmgr-backend-,$(BACKENDS)); do \
		[ -x "$$f" ] || { echo "install-only: no $$f: run make build man completions first" >&2; exit 1; }; \
	done
	@[ -f $(GENDIR)/share/man/man1/lockmgr.1.gz ] && [ -f $(GENDIR)/share/bash-completion/completions/lockmgr ] || \
		{ echo "install-only: no man pages or completions in $(GENDIR): run make man completions first" >&2; exit 1; }
	install -Dm755 $(BIN)/lockmgr '$(DESTDIR)$(PREFIX)/bin/lockmgr'
	install -dm755 '$(DESTDIR)$(PREFIX)/lib/lockmgr'
	install -m755 $(BIN)/lockmgr-full $(addprefix $(BIN)/lockmgr-backend-,$(BACKENDS)) '$(DESTDIR)$(PREFIX)/lib/lockmgr/'
	@for sec in 1 5; do \
		set -- $(GENDIR)/share/man/man$$sec/*.$$sec.gz; [ -e "$$1" ] || continue; \
		dir="$(DESTDIR)$(MANDIR)/man$$sec"; \
		echo "install -m644 $(GENDIR)/share/man/man$$sec/*.$$sec.gz $$dir/"; \
		install -dm755 "$$dir" && install -m644 "$$@" "$$dir/" || exit 1; \
	done
	install -Dm644 $(GENDIR)/share/bash-completion/completions/lockmgr \
		'$(DESTDIR)$(PREFIX)/share/bash-completion/completions/lockmgr'
	install -Dm644 $(GENDIR)/share/zsh/site-functions/_lockmgr \
		'$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_lockmgr'
	install -Dm644 $(GENDIR)/share/fish/vendor_completions.d/lockmgr.fish \
		'$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/lockmgr.fish'
	install -Dm644 LICENSE '$(DESTDIR)$(LICENSEDIR)/LICENSE'
	@conf='$(DESTDIR)$(SYSCONFDIR)/lockmgr/config.toml'; \
	if [ -e "$$conf" ]; then \
		echo "install: keeping $$conf; the default is packaging/config.toml"; \
	else \
		echo "install -Dm644 packaging/config.toml $$conf"; \
		install -Dm644 packaging/config.toml "$$conf"; \
	fi

## release-snapshot: a signed goreleaser snapshot in dist/ with a throwaway key, verified and run
release-snapshot:
	GO=$(GO) bash packaging/release-snapshot.sh

## package-check: build packaging/PKGBUILD, the AUR PKGBUILD and install every package into
## scratch roots, then run them (needs makepkg and pacman; run release-snapshot first)
package-check:
	GO=$(GO) bash packaging/package-check.sh

## docs: the HTML manual into $(DOCSDIR), warnings as errors (needs Debian's
## python3-sphinx); docs/conf.py generates the command reference from the command tree
DOCSDIR ?= out/docs
docs:
	LOCKMGR_VERSION=$(VERSION) GO=$(GO) sphinx-build -W --keep-going -q -b html docs $(DOCSDIR)
