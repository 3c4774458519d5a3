"""manage.py import_products FILE: load a products.json or CSV into the catalog (idempotent)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError

from catalog.importers import ImportFileError, import_file
from core.outage import is_database_outage, outage_message


class Command(BaseCommand):
    help = "Import products from a products.json or CSV file; re-importing updates, never duplicates."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="products.json or .csv (image paths relative to the file)")
        parser.add_argument("--shop", default="", help="shop name for rows that do not give one")

    def handle(self, *args, file: Path, shop: str, **options):
        try:
            report = import_file(file, default_shop=shop)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc
        except (OperationalError, InterfaceError) as exc:
            if not is_database_outage(exc):
                raise
            # Each row is its own transaction: the rows before the outage are stored, and a re-run skips them.
            raise CommandError(
                f"{outage_message(exc)} Rows already imported are kept; run the same import again."
            ) from exc
        for error in report.errors:
            self.stderr.write(self.style.ERROR(str(error)))
        style = self.style.WARNING if report.errors else self.style.SUCCESS
        self.stdout.write(style(report.summary()))
        if report.errors and not report.rows_ok:
            raise CommandError("no row could be imported")
