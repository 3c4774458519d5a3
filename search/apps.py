from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Search"

    def ready(self) -> None:
        # Connects the catalog's "image added" signal to background processing, and migrate to the schedules.
        from search import receivers, worker  # noqa: F401

        # django-q2's own cluster does not stop on a SIGTERM to its process group (search/worker.py).
        worker.install()
