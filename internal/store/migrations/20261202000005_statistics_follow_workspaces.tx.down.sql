ALTER TABLE memberships RESET (autovacuum_analyze_scale_factor, autovacuum_analyze_threshold);
ALTER TABLE contacts RESET (autovacuum_analyze_scale_factor, autovacuum_analyze_threshold);
ALTER TABLE segments RESET (autovacuum_analyze_scale_factor, autovacuum_analyze_threshold);
