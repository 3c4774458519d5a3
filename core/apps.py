from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Neutral code every app may use; an app only so that its management commands are found."""

    name = "core"
    verbose_name = "Core"
