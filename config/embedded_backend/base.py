"""Django's PostgreSQL backend that starts the embedded server on the first connection.

Settings only name the data folder (``config.embedded_db.embedded_database_settings``); the server is
started or reused when a connection is first needed, so every kind of process gets it the same way: the
web process, ``qcluster``, management commands, pytest-django's test database creation and ``dbshell``.
A connection that fails because the server is gone starts it again and is retried once.
"""

from __future__ import annotations

from django.db.backends.postgresql import base, client

from config import embedded_db


class DatabaseClient(client.DatabaseClient):
    """``manage.py dbshell`` on the embedded server: start it first, then run its own psql."""

    @classmethod
    def settings_to_cmd_args_env(cls, settings_dict, parameters):
        args, env = super().settings_to_cmd_args_env(settings_dict, parameters)
        return [embedded_db.psql_path(), *args[1:]], env

    def runshell(self, parameters):
        self.connection.locate_server()
        super().runshell(parameters)


class DatabaseWrapper(base.DatabaseWrapper):
    client_class = DatabaseClient

    def locate_server(self) -> None:
        """Start or reuse the server and point these settings at its socket."""
        host, port = embedded_db.server_address(self.settings_dict["EMBEDDED"])
        self.settings_dict["HOST"], self.settings_dict["PORT"] = host, port

    def get_connection_params(self):
        self.locate_server()
        return super().get_connection_params()

    def get_new_connection(self, conn_params):
        try:
            return super().get_new_connection(conn_params)
        except self.Database.OperationalError as error:
            # sqlstate is set when a server answered (too many clients, no such database): not an outage.
            if not embedded_db.restart_if_down(self.settings_dict["EMBEDDED"], server_answered=bool(error.sqlstate)):
                raise
        return super().get_new_connection(self.get_connection_params())
