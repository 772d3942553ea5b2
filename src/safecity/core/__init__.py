"""The small core every domain builds on: configuration, database, event bus, auth, errors.

`core` imports no domain (checked by import-linter)."""
