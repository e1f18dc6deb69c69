# Obvious targets; the README's two commands are `make demo` and `make test`
# without make: bash scripts/demo.sh, bash scripts/test.sh.
.PHONY: build demo test unit bench fuzz vet clean

COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -modified)

build:
	go build -ldflags "-X github.com/holdfast-backup/holdfast/internal/buildinfo.Commit=$(COMMIT)" -o bin/holdfast ./cmd/holdfast

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

unit:
	go test ./...

bench:
	go run ./bench

vet:
	go vet ./...
	gofmt -l $$(git ls-files '*.go')

fuzz:
	bash scripts/fuzz.sh

clean:
	rm -rf bin
