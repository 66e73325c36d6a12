# Scuttle: make test runs everything CI runs; make help lists the targets.

FUZZTIME ?= 10s

.PHONY: test interop vet fuzz bench server demo help

test: ## install the JavaScript peers if needed, then vet and run every test with -race
	./scripts/test.sh

interop: ## install the JavaScript peers (npm ci in interop/) if missing or stale
	./scripts/interop.sh

fuzz: ## run each fuzz target for FUZZTIME (default 10s)
	./scripts/fuzz.sh $(FUZZTIME)

bench: ## Go benchmarks, then the programs that run Go and JavaScript side by side
	go test -run '^$$' -bench . -benchtime 10x ./scuttlebutt/...
	go test -run '^$$' -bench . ./ssb/message/ ./ssb/store/ ./ssb/blobs/ ./ssb/privatebox/
	go run ./bench/sbrepl -n 100000 -runs 3
	go run ./bench/ssbrpc -n 10000
	go run ./bench/ssbreplicate -n 100000 -feeds 1000 -per 100
	go run ./bench/ssbstore
	go run ./bench/ssbprivate
	go run ./bench/ssbblobs -n 50 -size 200000
	go run ./bench/ssbblobfetch
	go run ./bench/ssbprivateindex
	go run ./bench/ssbhostile

server: ## an SSB server on its embedded store (~/.ssb-go, port 8008)
	go run ./cmd/sbot server

demo: ## a live replicated key-value store on 127.0.0.1:7000
	go run ./cmd/sbkv -listen 127.0.0.1:7000

help:
	@grep -E '^[a-z]+:.*## ' Makefile | sed 's/:.*## /\t/'
