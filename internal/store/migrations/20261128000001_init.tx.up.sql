-- older servers: stop: it builds the schema
-- The CRM schema. Every tenant table leads its primary, unique and foreign keys with
-- workspace_id: one workspace can never reference another's rows, and the tables can
-- later be distributed by workspace (Citus) without changing a key.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE TABLE workspaces (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL CHECK (name <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 hashes of the key; the key itself is shown once.
CREATE TABLE api_keys (
    workspace_id bigint NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    key_hash     bytea NOT NULL,
    -- The key's first characters, safe to show in listings and logs.
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    PRIMARY KEY (workspace_id, id)
);
-- Authentication looks a key up by its hash before the workspace is known.
CREATE INDEX api_keys_key_hash ON api_keys (key_hash);

CREATE TABLE segments (
    workspace_id  bigint NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    id            bigint GENERATED ALWAYS AS IDENTITY,
    name          text NOT NULL CHECK (name <> ''),
    description   text,
    -- Maintained by the membership triggers below, in the same transaction as every
    -- membership change: reading a count never counts rows.
    contact_count bigint NOT NULL DEFAULT 0 CHECK (contact_count >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id)
);
-- Names are unique per workspace, ignoring case; also the NAME ordering.
CREATE UNIQUE INDEX segments_name ON segments (workspace_id, lower(name));
CREATE INDEX segments_created_at ON segments (workspace_id, created_at, id);
CREATE INDEX segments_updated_at ON segments (workspace_id, updated_at, id);
CREATE INDEX segments_contact_count ON segments (workspace_id, contact_count, id);
-- Substring search on name and description; the newline keeps a term from matching
-- across the two.
CREATE INDEX segments_search ON segments
    USING gin (workspace_id, (name || E'\n' || coalesce(description, '')) gin_trgm_ops);

CREATE TABLE contacts (
    workspace_id bigint NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    phone        text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'), -- E.164
    name         text,
    email        text,
    attributes   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, phone)
);
CREATE INDEX contacts_created_at ON contacts (workspace_id, created_at, id);
CREATE INDEX contacts_updated_at ON contacts (workspace_id, updated_at, id);
-- The NAME ordering: named contacts first, by name ignoring case, then the unnamed.
CREATE INDEX contacts_name ON contacts (workspace_id, (name IS NULL), coalesce(lower(name), ''), id);
CREATE INDEX contacts_search ON contacts
    USING gin (workspace_id, (coalesce(name, '') || E'\n' || phone || E'\n' || coalesce(email, '')) gin_trgm_ops);

CREATE TABLE memberships (
    workspace_id bigint NOT NULL,
    segment_id   bigint NOT NULL,
    contact_id   bigint NOT NULL,
    PRIMARY KEY (workspace_id, segment_id, contact_id),
    FOREIGN KEY (workspace_id, segment_id) REFERENCES segments ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, contact_id) REFERENCES contacts ON DELETE CASCADE
);
-- A contact's segments, and the cascade when a contact is deleted.
CREATE INDEX memberships_contact ON memberships (workspace_id, contact_id, segment_id);

-- contact_count follows every insert and delete of memberships, including the deletes
-- cascaded from contacts and segments. Statement-level triggers see all changed rows
-- at once, so a bulk change updates each segment once. Writers lock the segments they
-- change in id order before they touch memberships, which keeps these updates free of
-- deadlocks.
CREATE FUNCTION memberships_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE segments s
       SET contact_count = s.contact_count + d.n, updated_at = now()
      FROM (SELECT workspace_id, segment_id, count(*) AS n FROM inserted GROUP BY 1, 2) d
     WHERE s.workspace_id = d.workspace_id AND s.id = d.segment_id;
    RETURN NULL;
END $$;

CREATE FUNCTION memberships_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE segments s
       SET contact_count = s.contact_count - d.n, updated_at = now()
      FROM (SELECT workspace_id, segment_id, count(*) AS n FROM deleted GROUP BY 1, 2) d
     WHERE s.workspace_id = d.workspace_id AND s.id = d.segment_id;
    RETURN NULL;
END $$;

CREATE TRIGGER memberships_count_inserted AFTER INSERT ON memberships
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_count_inserted();

CREATE TRIGGER memberships_count_deleted AFTER DELETE ON memberships
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_count_deleted();
