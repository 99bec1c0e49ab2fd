package store

import (
	"context"
	"fmt"
)

// SettingWarning is a setting of the PostgreSQL server that leaves it unsafe for this
// application, with what to do about it.
type SettingWarning struct {
	Name  string // the setting, as SHOW names it
	Value string // its value for the store's sessions
	Why   string // what can go wrong with it
	Fix   string // how a superuser changes it
}

// SettingWarnings returns the settings of the server that leave it unsafe, or none.
// It checks what the application cannot set for itself: the timeouts are its role's
// settings, which Open sets, but temp_file_limit is a superuser setting, whose default
// is no limit. The embedded server sets it (pgserver); an operator's own PostgreSQL
// may not.
func (s *Store) SettingWarnings(ctx context.Context) ([]SettingWarning, error) {
	var tempFileLimit string
	if err := s.db.NewRaw(`SELECT current_setting('temp_file_limit')`).Scan(ctx, &tempFileLimit); err != nil {
		return nil, fmt.Errorf("store: read settings: %w", err)
	}
	var warnings []SettingWarning
	if tempFileLimit == "-1" {
		warnings = append(warnings, SettingWarning{
			Name:  "temp_file_limit",
			Value: tempFileLimit,
			Why:   "no limit: one misplanned statement can fill the disk with temporary files",
			Fix:   "ALTER SYSTEM SET temp_file_limit = '4GB'; SELECT pg_reload_conf();",
		})
	}
	return warnings, nil
}
