from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """The operator's admin over every app (catalog, search, scraping): the one room that sees them all."""

    name = "backoffice"
    verbose_name = "Back office"
