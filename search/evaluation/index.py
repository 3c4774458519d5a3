"""An evaluation index apart from the live one: the catalog's tables, copied empty into a schema of its own.

While the evaluation runs, the command's connection puts that schema first on its ``search_path``, so
the catalog's models, services and ``search.selectors`` work unchanged, but on throwaway tables: no
evaluation product ever shows on the site, and the live HNSW index is never written or read. Other
connections (the web site, workers) never see the schema. It is dropped afterwards unless kept.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

from django.conf import settings
from django.db import connection
from django.db.backends.signals import connection_created

from catalog.models import EmbeddingSpace, Garment, Product, ProductImage
from catalog.services import hnsw_index_sql

# Copied without rows; the garment table also without its indexes (the live partial HNSW indexes name
# live space ids), and gets one HNSW index of its own once the vectors are in (``build_hnsw``).
TABLES = (Product, ProductImage, EmbeddingSpace, Garment)
SCHEMA_PREFIX = "lookalike_eval_"


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


class EvaluationIndex:
    """One schema holding one configuration's photos, garments and HNSW index."""

    def __init__(self, schema: str):
        self.schema = schema

    def qualified(self, model) -> str:
        return f"{_quote(self.schema)}.{_quote(model._meta.db_table)}"

    def build_hnsw(self, space: EmbeddingSpace) -> None:
        """The same DDL and parameters as the live index, over the evaluation's garments, then ANALYZE."""
        with connection.cursor() as cursor:
            cursor.execute(
                hnsw_index_sql(
                    index_name=f"eval_garment_hnsw_space_{space.pk}",
                    space_id=space.pk,
                    dim=space.dim,
                    m=settings.HNSW_M,
                    ef_construction=settings.HNSW_EF_CONSTRUCTION,
                    table=self.qualified(Garment),
                )
            )
            for model in TABLES:
                cursor.execute(f"ANALYZE {self.qualified(model)}")


def _search_path(schema: str, live_schema: str) -> str:
    return f"SET search_path TO {_quote(schema)}, {_quote(live_schema)}"


@contextlib.contextmanager
def evaluation_index(*, keep: bool = False) -> Iterator[EvaluationIndex]:
    """Create the schema, route this connection's catalog tables to it, and drop it afterwards."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        live_schema = cursor.fetchone()[0]
    schema = SCHEMA_PREFIX + secrets.token_hex(4)

    def reapply(sender, connection, **kwargs):  # a reconnect must not send writes to the live tables
        with connection.cursor() as cursor:
            cursor.execute(_search_path(schema, live_schema))

    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {_quote(schema)}")
            for model in TABLES:
                table = _quote(model._meta.db_table)
                including = "INCLUDING ALL EXCLUDING INDEXES" if model is Garment else "INCLUDING ALL"
                cursor.execute(
                    f"CREATE TABLE {_quote(schema)}.{table} (LIKE {_quote(live_schema)}.{table} {including})"
                )
            cursor.execute(f"ALTER TABLE {_quote(schema)}.{_quote(Garment._meta.db_table)} ADD PRIMARY KEY (id)")
            cursor.execute(_search_path(schema, live_schema))
        connection_created.connect(reapply, weak=False, dispatch_uid=f"evaluation-{schema}")
        _check_routed(schema)
        yield EvaluationIndex(schema)
    finally:
        connection_created.disconnect(dispatch_uid=f"evaluation-{schema}")
        with connection.cursor() as cursor:
            cursor.execute(f"SET search_path TO {_quote(live_schema)}")
            if not keep:
                cursor.execute(f"DROP SCHEMA IF EXISTS {_quote(schema)} CASCADE")


def _check_routed(schema: str) -> None:
    """Refuse to go on unless every catalog table now resolves into the evaluation schema."""
    with connection.cursor() as cursor:
        for model in TABLES:
            cursor.execute(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.oid = %s::regclass",
                [model._meta.db_table],
            )
            found = cursor.fetchone()[0]
            if found != schema:
                raise RuntimeError(f"{model._meta.db_table} resolves to schema {found}, not {schema}; stopping")


def leftover_schemas() -> list[str]:
    """Evaluation schemas still in the database (kept with --keep, or left by a killed run)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s ORDER BY 1", [SCHEMA_PREFIX + "%"])
        return [row[0] for row in cursor.fetchall()]
