-- older servers: keep running: they write texts uncomposed (segments check --repair)
-- Names, descriptions and emails are kept composed (Unicode NFC) since this version
-- (crm.normalText), and search terms are composed too: compose those stored before, or
-- a search would no longer find them, and "Café" could be created beside a segment
-- named "Cafe" with a combining accent. Of segments whose names compose to one name
-- (regardless of case), only one may have it: the one already composed, else the
-- oldest; the others keep their names as they are. It reads every row once (about a
-- second at a million contacts, and more than the roles' statement_timeout may allow)
-- and changes only those not composed. PostgreSQL composes only in a UTF-8 database,
-- which a database of any other encoding needs no composing for.
SET LOCAL statement_timeout = 0;
DO $$
BEGIN
    IF current_setting('server_encoding') <> 'UTF8' THEN
        RETURN;
    END IF;
    UPDATE segments AS s SET name = normalize(s.name, NFC)
     WHERE s.name IS NOT NFC NORMALIZED
       AND NOT EXISTS (SELECT 1 FROM segments AS t
                        WHERE t.workspace_id = s.workspace_id AND t.id <> s.id
                          AND lower(t.name) = lower(normalize(s.name, NFC)))
       AND s.id = (SELECT min(u.id) FROM segments AS u
                    WHERE u.workspace_id = s.workspace_id AND u.name IS NOT NFC NORMALIZED
                      AND lower(normalize(u.name, NFC)) = lower(normalize(s.name, NFC)));
    UPDATE segments SET description = normalize(description, NFC) WHERE description IS NOT NFC NORMALIZED;
    UPDATE contacts SET name = normalize(name, NFC) WHERE name IS NOT NFC NORMALIZED;
    UPDATE contacts SET email = normalize(email, NFC) WHERE email IS NOT NFC NORMALIZED;
END $$;
