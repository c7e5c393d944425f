"""The production server: gevent's pywsgi with gevent-websocket's handler.

Why this wiring: under gevent, simple-websocket (flask-sock's engine) writes frames with
`socket.send`, which may write only part of a large frame; gevent-websocket writes with
`sendall`. gevent-websocket upgrades the connection itself and hands the app a ready
socket in `environ['wsgi.websocket']`, which `imchat.ctrl.chat` uses; under the Flask dev
server there is no such key and the same view falls back to simple-websocket.
"""
import logging
import os

from gevent.pywsgi import WSGIServer
from geventwebsocket.handler import WebSocketHandler

log = logging.getLogger('imchat')


def make_server(app, host=None, port=None, **kwargs):
    host = app.config['HOST'] if host is None else host
    port = app.config['PORT'] if port is None else port
    return WSGIServer((host, port), app, handler_class=WebSocketHandler, **kwargs)


def serve(app):
    server = make_server(app)
    log.info('imchat listening on http://%s:%s (pid %s)', app.config['HOST'],
             app.config['PORT'], os.getpid())
    server.serve_forever()
