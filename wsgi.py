"""Entry point: `python wsgi.py` serves imchat on gevent; `flask --app wsgi run` serves
the same app on the Flask dev server.

gevent must patch the standard library before Flask, Pony or PyMySQL is imported:
Pony keeps its session in a thread-local, which only becomes greenlet-local once
patched, and PyMySQL's sockets must be gevent's to yield instead of blocking.
"""
from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import os  # noqa: E402

from imchat import create_app  # noqa: E402,F401

log = logging.getLogger('imchat')


def main():
    from gevent.pywsgi import WSGIServer

    app = create_app()
    host, port = app.config['HOST'], app.config['PORT']
    server = WSGIServer((host, port), app)
    log.info('imchat listening on http://%s:%s (pid %s)', host, port, os.getpid())
    server.serve_forever()


if __name__ == '__main__':
    main()
