from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Search"

    def ready(self) -> None:
        # Connects the catalog's "image added" signal to background processing.
        from search import receivers  # noqa: F401
