"""The throttle's per-client request history (``core.throttling``: atomic across processes, issue 15)."""

import django.contrib.postgres.fields
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="ThrottleHistory",
            fields=[
                ("key", models.TextField(primary_key=True, serialize=False)),
                (
                    "history",
                    django.contrib.postgres.fields.ArrayField(base_field=models.FloatField(), default=list, size=None),
                ),
                ("expires", models.FloatField(db_index=True)),
            ],
            options={
                "db_table": "core_throttle_history",
            },
        ),
    ]
