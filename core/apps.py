from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Neutral code every app may use; an app for its management commands and the throttle's table."""

    name = "core"
    verbose_name = "Core"
