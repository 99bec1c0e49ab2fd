// Command graphgen generates the GraphQL executor and models (graph/generated,
// graph/model) from gqlgen.yml: gqlgen's generate, with the project's changes to how
// the executor marshals lists and collects fields (internal/codegen, graph/execution).
// `go generate ./...` runs it.
package main

import (
	"fmt"
	"os"

	"github.com/99designs/gqlgen/codegen/config"
	"github.com/segments/segments/internal/codegen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "graphgen:", err)
		os.Exit(1)
	}
}

// run loads gqlgen.yml from the working directory or the nearest one above it, as
// gqlgen does, and generates.
func run() error {
	cfg, err := config.LoadConfigFromDefaultLocations()
	if err != nil {
		return err
	}
	return codegen.Generate(cfg)
}
