"""The shared cache's table (``CACHES`` uses Django's DatabaseCache unless REDIS_URL is set).

Why a migration: Django creates that table only with ``createcachetable``, a step README's commands would
need on every fresh machine; here ``migrate`` does it (idempotent: an existing table is kept).
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor) -> None:
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies: list = []
    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop, elidable=True)]
