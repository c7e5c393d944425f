"""Entry point: `python wsgi.py` serves imchat on gevent; `flask --app wsgi run` serves
the same app on the Flask dev server.

gevent must patch the standard library before Flask, Pony or PyMySQL is imported:
Pony keeps its session in a thread-local, which only becomes greenlet-local once
patched, and PyMySQL's sockets must be gevent's to yield instead of blocking.
"""
from gevent import monkey

monkey.patch_all()

from imchat import create_app  # noqa: E402,F401


def main():
    from imchat.process.server import main as serve_main

    serve_main(create_app)


if __name__ == '__main__':
    main()
