"""The server process: how `python wsgi.py` runs, serves and stops.

- `server`: the production server (gevent's pywsgi with gevent-websocket's handler),
  `main` (serve, or supervise workers) and the graceful stop;
- `door`: cheap refusals at the door, before the app does any work;
- `supervisor`: several worker processes on one port (`IMCHAT_WORKERS`);
- `worker`: a worker's side of that (who it is, its shared socket, its log label);
- `signals`: the stop signals and the listening URL, shared by server and supervisor.

Imports run one way: server -> supervisor -> worker, signals; nothing here imports
`server`.
"""
