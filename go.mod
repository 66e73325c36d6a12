module github.com/scuttlego/scuttle

go 1.26.0

require (
	filippo.io/edwards25519 v1.2.0
	github.com/cockroachdb/datadriven v1.0.3
	go.etcd.io/bbolt v1.5.0
	go.uber.org/goleak v1.3.0
	golang.org/x/crypto v0.58.0
	golang.org/x/sys v0.49.0
	pgregory.net/rapid v1.3.0
)

require github.com/pmezard/go-difflib v1.0.0 // indirect
