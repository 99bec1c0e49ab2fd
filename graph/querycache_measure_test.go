package graph

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/limits/limitstest"
)

// TestMeasureQueryCache prints the heap that the parsed documents of limitstest's
// valid documents keep in the query cache, per document and per token (with
// MEASURE=1): what bytesPerToken is measured from.
func TestMeasureQueryCache(t *testing.T) {
	if os.Getenv("MEASURE") == "" {
		t.Skip()
	}
	l := limits.Defaults
	for _, d := range limitstest.Adversarial(l) {
		if !d.Valid {
			continue
		}
		exec := newExecutor(Options{})
		c := newBoundedCache(1<<20, 1<<40, func(query string, _ *ast.QueryDocument) int { return len(query) })
		exec.SetQueryCache(c)
		tokens, _ := limits.CountTokens(d.Query, -1)
		const n = 50
		before := heapAlloc()
		for i := range n {
			exec.CreateOperationContext(writerContext(), &graphql.RawParams{Query: distinctDoc(d.Query, i), Variables: d.Variables})
		}
		after := heapAlloc()
		if c.order.Len() == 0 {
			continue
		}
		per := float64(after-before) / float64(c.order.Len())
		fmt.Printf("%-70.70s cached %3d tokens %6d text %7d heap/doc %9.0f  /token %6.0f\n", d.Name, c.order.Len(), tokens, len(d.Query), per, per/float64(max(tokens, 1)))
		runtime.KeepAlive(exec)
		runtime.KeepAlive(c)
	}
}

// TestMeasureDashboardDocs does the same for the documents of docs/dashboard.md.
func TestMeasureDashboardDocs(t *testing.T) {
	if os.Getenv("MEASURE") == "" {
		t.Skip()
	}
	b, _ := os.ReadFile("../docs/dashboard.md")
	w, _ := os.ReadFile("../cmd/segbench/workloads.go")
	var docs []string
	for _, m := range regexp.MustCompile("(?s)(?:gql|graphql\\()`(.*?)`").FindAllStringSubmatch(string(b)+string(w), -1) {
		docs = append(docs, m[1])
	}
	for _, m := range regexp.MustCompile("(?s)```graphql\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		docs = append(docs, m[1])
	}
	for _, d := range docs {
		exec := newExecutor(Options{})
		c := newBoundedCache(1<<20, 1<<40, func(query string, _ *ast.QueryDocument) int { return len(query) })
		exec.SetQueryCache(c)
		tokens, _ := limits.CountTokens(d, -1)
		const n = 50
		before := heapAlloc()
		for i := range n {
			exec.CreateOperationContext(writerContext(), &graphql.RawParams{Query: distinctDoc(d, i)})
		}
		after := heapAlloc()
		if c.order.Len() == 0 {
			fmt.Printf("not cached: %.60q\n", d)
			continue
		}
		per := float64(after-before) / float64(c.order.Len())
		fmt.Printf("%-50.50q cached %3d tokens %6d text %7d heap/doc %9.0f  /token %6.0f\n", d, c.order.Len(), tokens, len(d), per, per/float64(max(tokens, 1)))
	}
}

// TestMeasureChargeCost compares parsedCharge (a lexing, once per document cached)
// with parsing and validating the same new document (with MEASURE=1).
func TestMeasureChargeCost(t *testing.T) {
	if os.Getenv("MEASURE") == "" {
		t.Skip()
	}
	for _, d := range limitstest.Adversarial(limits.Defaults) {
		if !d.Valid || (d.Code != "" && d.Code != limits.CodeMaxCost) {
			continue
		}
		exec := newExecutor(Options{})
		const n = 20
		start := time.Now()
		for i := range n {
			exec.CreateOperationContext(writerContext(), &graphql.RawParams{Query: distinctDoc(d.Query, i), Variables: d.Variables})
		}
		parse := time.Since(start) / n
		start = time.Now()
		for i := range n {
			parsedCharge(distinctDoc(d.Query, i), nil)
		}
		charge := time.Since(start) / n
		fmt.Printf("%-60.60s new document %9v  parsedCharge %9v (%.0f%%)\n", d.Name, parse, charge, 100*float64(charge)/float64(parse))
	}
}
