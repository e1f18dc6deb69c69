# Obvious targets; the README's two commands are `make demo` and `make test`
# without make: bash scripts/demo.sh, bash scripts/test.sh.
.PHONY: build demo test unit bench fuzz vet clean

# libzstd: compress with libzstd through cgo (needs gcc and libzstd-dev);
# without the tag a build uses the pure-Go encoder.
TAGS := libzstd
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -modified)

build:
	go build -tags $(TAGS) -ldflags "-X github.com/holdfast-backup/holdfast/internal/buildinfo.Commit=$(COMMIT)" -o bin/holdfast ./cmd/holdfast

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

unit:
	go test -tags $(TAGS) ./...

bench:
	go run ./bench

vet:
	go vet -tags $(TAGS) ./...
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"

fuzz:
	bash scripts/fuzz.sh

clean:
	rm -rf bin
