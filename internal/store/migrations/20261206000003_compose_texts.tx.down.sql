-- Composed texts stay composed: which were not is not known.
SELECT 1;
