-- A record's index fields move into its row (fields, a JSON object of
-- strings), and store_fields, ordered by value, becomes the only index
-- b-tree: every field written used to be two b-tree entries (the
-- store_index row and store_index_value) and every Get read both tables.
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
