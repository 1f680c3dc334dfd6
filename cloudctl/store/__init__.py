"""The SQLite state store: the only package that contains SQL."""
