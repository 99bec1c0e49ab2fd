// tools/schema holds Node tooling, no Go. This file makes it a module of its own so that
// `go vet ./...` and `go test ./...` at the repository root skip the Go sources that an
// npm package in node_modules ships (flatted, under eslint).
module github.com/segments/segments/tools/schema

go 1.26
