#!/usr/bin/env python
"""Django's command-line utility for Lookalike."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    from core.outage import exit_on_database_outage

    with exit_on_database_outage():  # one clear line, not a traceback, when the database is down
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
