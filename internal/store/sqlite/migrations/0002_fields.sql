-- A record's index fields move into its row (fields, a JSON object of
-- strings), and store_fields, ordered by value, becomes the only index
-- b-tree, kept by triggers: every field written used to be two b-tree
-- entries (the store_index row and store_index_value) and a statement of
-- its own, and every Get read both tables.
ALTER TABLE store_records ADD COLUMN fields TEXT NOT NULL DEFAULT '{}';

UPDATE store_records SET fields = (
	SELECT json_group_object(i.field, i.value) FROM store_index i
	WHERE i.collection = store_records.collection AND i.tenant = store_records.tenant AND i.id = store_records.id)
WHERE EXISTS (
	SELECT 1 FROM store_index i
	WHERE i.collection = store_records.collection AND i.tenant = store_records.tenant AND i.id = store_records.id);

-- store_fields holds one row per index field of a record: it serves
-- ordering, and conditions of equality, on one field.
CREATE TABLE store_fields (
	collection TEXT NOT NULL,
	tenant     TEXT NOT NULL,
	field      TEXT NOT NULL,
	value      TEXT NOT NULL,
	id         TEXT NOT NULL,
	PRIMARY KEY (collection, tenant, field, value, id)
) WITHOUT ROWID;

INSERT INTO store_fields (collection, tenant, field, value, id)
	SELECT collection, tenant, field, value, id FROM store_index;

DROP TABLE store_index;

-- Triggers keep store_fields equal to the fields of the records: a write
-- of a record is one statement. A record's fields are a JSON object of
-- strings, keyed by field names of [A-Za-z0-9_.], so '$."' || key || '"' is
-- the path of a key. Each lookup names the whole primary key of
-- store_fields, so none scans the index.
CREATE TRIGGER store_fields_insert AFTER INSERT ON store_records WHEN NEW.fields <> '{}'
BEGIN
	INSERT INTO store_fields (collection, tenant, field, value, id)
		SELECT NEW.collection, NEW.tenant, key, value, NEW.id FROM json_each(NEW.fields);
END;

CREATE TRIGGER store_fields_update AFTER UPDATE OF fields ON store_records WHEN OLD.fields <> NEW.fields
BEGIN
	DELETE FROM store_fields WHERE collection = OLD.collection AND tenant = OLD.tenant
		AND (field, value, id) IN (SELECT key, value, OLD.id FROM json_each(OLD.fields)
			WHERE json_extract(NEW.fields, '$."' || key || '"') IS NOT value);
	INSERT INTO store_fields (collection, tenant, field, value, id)
		SELECT NEW.collection, NEW.tenant, key, value, NEW.id FROM json_each(NEW.fields)
		WHERE json_extract(OLD.fields, '$."' || key || '"') IS NOT value;
END;

CREATE TRIGGER store_fields_delete AFTER DELETE ON store_records WHEN OLD.fields <> '{}'
BEGIN
	DELETE FROM store_fields WHERE collection = OLD.collection AND tenant = OLD.tenant
		AND (field, value, id) IN (SELECT key, value, OLD.id FROM json_each(OLD.fields));
END;
