"""The import benchmark of issue 4: `python -m bench` (or `make bench`).

It measures POST /api/contacts.import end to end against a real server on PostgreSQL and on
SQLite, next to two baselines on the same data and database: the *floor* (the same batches
written straight to the database by set-based SQL, no HTTP, no validation) and the *naive*
path (one contacts.upsert request per contact). See bench/run.py for what is measured.
"""
