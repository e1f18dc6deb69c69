# Obvious targets; the README's two commands are `make demo` and `make test`
# without make: bash scripts/demo.sh, bash scripts/test.sh.
.PHONY: build demo test unit bench fuzz vet clean

build:
	go build -o bin/holdfast ./cmd/holdfast

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
