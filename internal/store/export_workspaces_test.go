package store

// SetWorkspaceBatchRows makes every batch of DeleteWorkspace at most rows rows, for
// tests that need several batches of a small workspace, and returns what undoes it.
func SetWorkspaceBatchRows(rows int) (undo func()) {
	old := make([]int, len(workspaceBatches))
	for i := range workspaceBatches {
		old[i], workspaceBatches[i].rows = workspaceBatches[i].rows, rows
	}
	return func() {
		for i := range workspaceBatches {
			workspaceBatches[i].rows = old[i]
		}
	}
}

// SetGoneWorkspaceBatch makes every statement of PruneGoneWorkspaceChanges delete at
// most rows rows, and returns what undoes it.
func SetGoneWorkspaceBatch(rows int) (undo func()) {
	old := goneWorkspaceBatch
	goneWorkspaceBatch = rows
	return func() { goneWorkspaceBatch = old }
}
