package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestTakenSegmentName checks that a segment name already taken, on creation and on
// rename, is refused naming the segment that has it as that one is written, read by
// SegmentByName's statement: the workspace as every statement names it
// (workspaceArg), which for a workspace the statistics do not plan at its size, as a
// new one, is `(SELECT n::bigint)`, not the constant a literal ws wrote.
func TestTakenSegmentName(t *testing.T) {
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	ctx := store.WithWorkspace(context.Background(), ws.ID)
	if _, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "Dup Test"}); err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateSegment(ctx, ws.ID, crm.NewSegment{Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	lookup := fmt.Sprintf("s.workspace_id = (SELECT %d::bigint) AND lower(s.name) = lower('dup test')", ws.ID)
	capture, sent := store.CaptureStatements(ctx)
	if _, err := s.SegmentByName(capture, ws.ID, "dup test"); err != nil {
		t.Fatal(err)
	}
	byName := sent()
	if len(byName) != 1 || !strings.Contains(byName[0], lookup) {
		t.Fatalf("SegmentByName sent %q, want a statement with %s", byName, lookup)
	}
	name := "dup test"
	for _, tc := range []struct {
		what string
		do   func() error
	}{
		{"create", func() error {
			_, err := s.CreateSegment(capture, ws.ID, crm.NewSegment{Name: name})
			return err
		}},
		{"rename", func() error {
			_, err := s.UpdateSegment(capture, ws.ID, other.ID, crm.SegmentPatch{Name: crm.Some(&name)})
			return err
		}},
	} {
		err := tc.do()
		errs := crm.UserErrors(err)
		if len(errs) != 1 || errs[0].Code != crm.CodeTaken || errs[0].Message != `a segment named "Dup Test" already exists` {
			t.Errorf("%s: %v, want TAKEN naming \"Dup Test\"", tc.what, err)
		}
		var read bool
		for _, stmt := range sent() {
			if strings.Contains(stmt, "lower(s.name) = lower('dup test')") {
				read = true
				if !strings.Contains(stmt, lookup) {
					t.Errorf("%s: the taken name is read by %s\nwant the workspace as SegmentByName names it: %s", tc.what, stmt, lookup)
				}
			}
		}
		if !read {
			t.Errorf("%s: no statement read the segment that has the name", tc.what)
		}
	}
}
