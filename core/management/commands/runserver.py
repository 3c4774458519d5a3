"""``runserver`` with a read timeout on every connection (REQUEST_READ_TIMEOUT_SECONDS).

Django's development server waits forever for a body a client promised (a Content-Length larger than
what it sends), holding a thread per such connection. With a socket timeout the read fails, the client
gets 408 in the error shape, and the thread is free again. Static files are served as by staticfiles'
own runserver, which this extends.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles.management.commands.runserver import Command as StaticfilesRunserver
from django.core.servers.basehttp import WSGIServer


class ReadTimeoutWSGIServer(WSGIServer):
    def get_request(self):
        connection, address = super().get_request()
        connection.settimeout(settings.REQUEST_READ_TIMEOUT_SECONDS)
        return connection, address


class Command(StaticfilesRunserver):
    help = StaticfilesRunserver.help + " Each connection has a read timeout (REQUEST_READ_TIMEOUT_SECONDS)."
    server_cls = ReadTimeoutWSGIServer
