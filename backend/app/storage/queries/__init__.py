"""The read statements the API serves from, written once for SQLite and PostgreSQL on ``app.storage.sql``.

The API runs them through ``Database.read`` (no SQLAlchemy loaded); the worker's repositories run the same ones on
their session's connection (``app.storage.db.sql_connection``), so each read has one definition. Nothing here writes
except ``keys.touch_last_used``, the API's one write.
"""
