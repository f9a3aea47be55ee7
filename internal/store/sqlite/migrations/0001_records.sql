-- store_records holds one row per record; body is sealed above this layer.
CREATE TABLE store_records (
	collection TEXT NOT NULL,
	tenant     TEXT NOT NULL,
	id         TEXT NOT NULL,
	version    INTEGER NOT NULL CHECK (version >= 1),
	body       BLOB NOT NULL,
	PRIMARY KEY (collection, tenant, id)
);

-- store_index holds the declared clear index fields, one row per field.
CREATE TABLE store_index (
	collection TEXT NOT NULL,
	tenant     TEXT NOT NULL,
	id         TEXT NOT NULL,
	field      TEXT NOT NULL,
	value      TEXT NOT NULL,
	PRIMARY KEY (collection, tenant, id, field),
	FOREIGN KEY (collection, tenant, id)
		REFERENCES store_records (collection, tenant, id) ON DELETE CASCADE
) WITHOUT ROWID;

-- store_index_value serves conditions and ordering on one field.
CREATE INDEX store_index_value ON store_index (collection, tenant, field, value, id);
