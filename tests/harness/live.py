"""The app of this process served by the production server on a free port, for tests
that look inside the server (its hub, its services) while real clients talk to it.

The one import of imchat's server module in the harness is here."""
from gevent.pool import Pool

from imchat.process.server import make_server


class LiveServer:
    """The app served by the production server (gevent pywsgi + gevent-websocket)."""

    def __init__(self, app):
        self.app = app
        # Unbounded, as the server's own spawning is: it only counts the handlers.
        self.pool = Pool()
        self.server = make_server(app, '127.0.0.1', 0, spawn=self.pool)
        self.server.start()
        self.port = self.server.server_port
        self.url = 'http://127.0.0.1:{}'.format(self.port)

    def ws_url(self, account, **params):
        query = {'id': account.id, 'token': account.token}
        query.update(params)
        return 'ws://127.0.0.1:{}/chat?{}'.format(
            self.port, '&'.join('{}={}'.format(k, v) for k, v in query.items()))

    def handlers(self):
        """Requests the server is still handling. A WebSocket's request ends once its
        socket is handed to the background readers (or it is refused or closed)."""
        return len(self.pool)

    @property
    def hub(self):
        return self.app.extensions['imchat'].hub

    def close(self):
        self.hub.close_all(timeout=1)
        self.server.stop(timeout=1)
