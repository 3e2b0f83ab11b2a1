"""The import benchmark of issue 4: `python -m bench` (or `make bench`).

It measures POST /api/contacts.import end to end against a real server on PostgreSQL and on
SQLite, on four datasets, next to baselines on the same data and database: the *floor* (the
same batches written straight to the database by set-based SQL, no HTTP, no validation), a
stricter floor on primary-key-only tables, and the *naive* path (one contacts.upsert request
per contact); and the import under concurrent clients. bench/README.md says what is measured.
"""
