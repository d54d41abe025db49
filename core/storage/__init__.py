"""Database access: one engine per database URL, transactions, the schema and its migrations."""
