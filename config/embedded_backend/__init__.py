"""Database backend for the embedded PostgreSQL: Django's own PostgreSQL backend, started on first use."""
