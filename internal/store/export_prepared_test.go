package store

import "database/sql"

// SimpleDB returns a pool of one connection to s's database that never prepares:
// every statement is sent in one simple-protocol message, as before prepared.go.
func (s *Store) SimpleDB() *sql.DB {
	c := s.connector.(tenantConnector)
	c.prepare = false
	return newPool(c, 1).DB
}

// SetMaxPrepared makes connections keep at most n prepared statements until restore.
func SetMaxPrepared(n int) (restore func()) {
	old := maxPrepared
	maxPrepared = n
	return func() { maxPrepared = old }
}

// PreparedName is the name of the statement that sets each statement's settings on
// a connection that prepares.
const PreparedName = settingName
