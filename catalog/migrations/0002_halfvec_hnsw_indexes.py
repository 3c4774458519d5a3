"""Rebuild each embedding space's HNSW index over half-precision copies of the vectors.

The table keeps full-precision vectors; only the index changes (half the size, same recall: bench/README.md).
The DDL is written out here rather than imported so the migration stays what it was when it shipped.
"""

from django.conf import settings
from django.db import migrations


def _rebuild(apps, schema_editor, *, vector_type: str, opclass: str):
    EmbeddingSpace = apps.get_model("catalog", "EmbeddingSpace")
    for space in EmbeddingSpace.objects.all():
        name = f"catalog_garment_hnsw_space_{space.pk}"
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
        schema_editor.execute(
            f"CREATE INDEX {name} ON catalog_garment "
            f"USING hnsw ((embedding::{vector_type}({int(space.dim)})) {opclass}) "
            f"WITH (m = {int(settings.HNSW_M)}, ef_construction = {int(settings.HNSW_EF_CONSTRUCTION)}) "
            f"WHERE space_id = {int(space.pk)}"
        )


def to_halfvec(apps, schema_editor):
    _rebuild(apps, schema_editor, vector_type="halfvec", opclass="halfvec_cosine_ops")


def to_vector(apps, schema_editor):
    _rebuild(apps, schema_editor, vector_type="vector", opclass="vector_cosine_ops")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]

    operations = [migrations.RunPython(to_halfvec, to_vector)]
