"""Several server processes on one port (`IMCHAT_WORKERS`), supervised.

With `IMCHAT_WORKERS` above 1, `python wsgi.py` becomes a supervisor: it checks the
settings and prepares the database once (`create_app`, then closes it), then starts that
many workers, each a fresh `python wsgi.py` that serves exactly as one process does
today. The workers share the port:

- on Linux, each worker binds its own listening socket with SO_REUSEPORT and the
  kernel spreads new connections over them; the supervisor keeps one socket bound
  (never listening, so it receives nothing) to hold the port while workers come and go;
- elsewhere on POSIX (the BSDs' and macOS's SO_REUSEPORT lets several sockets bind but
  does not spread connections), the supervisor listens once and every worker accepts
  from that inherited socket (the classic pre-fork model; the busiest worker accepts
  less);
- on Windows there is no fork and no SO_REUSEPORT sharing: one process serves, and a
  log line says so.

A worker that dies (a crash, SIGKILL, the OOM killer) is logged and started again; one
that keeps dying right after its start is restarted with a growing delay (up to
`MAX_RESTART_DELAY`), so a broken deployment does not spin. SIGTERM or SIGINT to the
supervisor is passed to every worker once, and each does its own graceful stop (closes
its WebSockets with 1001, finishes storing what is in flight); the supervisor exits 0
when all of them did. A second signal is passed on too, and each exits at once, as one
process does. The workers run in their own process group so that Ctrl+C in a terminal
reaches them only through the supervisor (exactly one signal each); a worker whose
supervisor vanished (SIGKILL) notices within a second and stops gracefully by itself.

More than one worker needs a bus (`IMCHAT_BUS`): the workers are separate processes, so
without one, users that land on different workers could not reach each other. The
supervisor refuses to start without one.

What a worker does with what the supervisor gives it is `imchat.process.worker`.
"""
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import List, Optional

import gevent
from gevent.event import Event

from imchat.process.signals import listen_url, on_stop_signals
from imchat.process.worker import LISTEN_FD_ENV, WORKER_ENV, bind_socket, worker_identity
from imchat.service.bus.urls import bus_url_for_worker

log = logging.getLogger(__name__)

# A worker that lived less than this was probably killed by its own start (a bad
# setting, the database gone): wait before the next try, doubling up to the maximum.
QUICK_DEATH = 10.0
FIRST_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0


def has_bus(config) -> bool:
    return str(config.get('BUS') or 'none').strip().lower() not in ('', 'none')


def worker_count(config) -> int:
    """IMCHAT_WORKERS, with 0 meaning one per CPU core."""
    count = config.get('WORKERS', 1)
    if count < 0:
        raise ValueError('IMCHAT_WORKERS={} is not valid: give 1 or more, or 0 for one '
                         'per CPU core'.format(count))
    return count or os.cpu_count() or 1


def wants_supervisor(config) -> bool:
    """True when this process should supervise workers rather than serve."""
    return worker_count(config) > 1 and worker_identity() is None


def sharing_mode(platform: str = sys.platform,
                 reuseport: bool = hasattr(socket, 'SO_REUSEPORT')) -> str:
    """How workers share the port here: 'reuseport' (Linux, which spreads connections
    over SO_REUSEPORT sockets), 'inherit' (one listening socket), or 'single' (Windows:
    one process)."""
    if platform == 'win32':
        return 'single'
    return 'reuseport' if reuseport and platform.startswith('linux') else 'inherit'


def _describe_exit(code):
    if code < 0:
        try:
            return 'killed by {}'.format(signal.Signals(-code).name)
        except ValueError:
            return 'killed by signal {}'.format(-code)
    return 'exited with status {}'.format(code)


class Worker:
    def __init__(self, index):
        self.index = index
        self.process = None
        self.started = 0.0
        self.quick_deaths = 0
        # How its last process ended once the supervisor was stopping (None: it was not
        # running then).
        self.final_code = None


class Supervisor:
    """Starts `count` workers running `argv`, restarts those that die, and stops them
    all on a stop signal."""

    def __init__(self, argv, count, host, port, mode, shutdown_timeout, node_id=None):
        self.argv = argv
        self.workers = [Worker(index) for index in range(1, count + 1)]
        self.host = host
        self.port = port
        self.mode = mode
        self.shutdown_timeout = shutdown_timeout
        self.node_id = node_id
        self.stopping = Event()
        self.signals_seen = []
        self.holder = None

    def hold_port(self):
        """Bind the port before any worker starts: a port in use stops the start here,
        once, and port 0 becomes a real port every worker then shares."""
        listen = self.mode == 'inherit'
        self.holder = bind_socket(self.host, self.port, reuseport=not listen, listen=listen)
        self.port = self.holder.getsockname()[1]

    def _environ(self, worker):
        env = dict(os.environ)
        env[WORKER_ENV] = '{}:{}'.format(worker.index, os.getpid())
        env['IMCHAT_PORT'] = str(self.port)
        if self.node_id:
            # One name per process on the bus, stable across a worker's restarts.
            env['IMCHAT_NODE_ID'] = '{}-w{}'.format(self.node_id, worker.index)
        if env.get('IMCHAT_BUS'):
            env['IMCHAT_BUS'] = bus_url_for_worker(env['IMCHAT_BUS'], worker.index,
                                                   len(self.workers))
        if self.mode == 'inherit':
            env[LISTEN_FD_ENV] = str(self.holder.fileno())
        return env

    def _start(self, worker):
        pass_fds = (self.holder.fileno(),) if self.mode == 'inherit' else ()
        worker.process = subprocess.Popen(self.argv, env=self._environ(worker),
                                          pass_fds=pass_fds, process_group=0)
        worker.started = time.monotonic()
        log.info('worker %s started (pid %s)', worker.index, worker.process.pid)

    def _keep_alive(self, worker):
        """Run one worker for the supervisor's life, starting it again when it dies."""
        while not self.stopping.is_set():
            try:
                self._start(worker)
            except OSError as error:
                log.error('could not start worker %s: %s', worker.index, error)
                code, pid, lived = None, None, 0.0
            else:
                if self.stopping.is_set():
                    # The stop signal came while it was starting: pass it on too.
                    self._signal(worker, signal.SIGTERM)
                code, pid = worker.process.wait(), worker.process.pid
                if self.stopping.is_set():
                    worker.final_code = code
                    return
                lived = time.monotonic() - worker.started
            worker.quick_deaths = worker.quick_deaths + 1 if lived < QUICK_DEATH else 0
            delay = 0 if not worker.quick_deaths else min(
                MAX_RESTART_DELAY, FIRST_RESTART_DELAY * 2 ** (worker.quick_deaths - 1))
            if pid is not None:
                log.error('worker %s (pid %s) %s after %.1f s; restarting it%s',
                          worker.index, pid, _describe_exit(code), lived,
                          ' in {:g} s'.format(delay) if delay else '')
            if self.stopping.wait(delay):
                return

    def request_stop(self, name):
        self.signals_seen.append(name)
        first = len(self.signals_seen) == 1
        if first:
            log.info('%s received: stopping %s workers', name, len(self.workers))
            self.stopping.set()
        else:
            log.warning('%s received during shutdown: the workers exit now', name)
        for worker in self.workers:
            self._signal(worker, signal.SIGTERM)

    @staticmethod
    def _signal(worker, number):
        if worker.process is not None and worker.process.poll() is None:
            try:
                worker.process.send_signal(number)
            except ProcessLookupError:
                pass

    def run(self) -> int:
        """Supervise until a stop signal; return the exit status (0: every worker
        stopped cleanly)."""
        handles = on_stop_signals(self.request_stop)
        log.info('supervisor (pid %s): %s workers on %s, sharing the port by %s',
                 os.getpid(), len(self.workers), listen_url((self.host, self.port)),
                 'SO_REUSEPORT' if self.mode == 'reuseport'
                 else 'one inherited listening socket (no SO_REUSEPORT here)')
        keepers = [gevent.spawn(self._keep_alive, worker) for worker in self.workers]
        self.stopping.wait()
        # Each worker allows itself SHUTDOWN_TIMEOUT and stops about a second later.
        deadline = time.monotonic() + self.shutdown_timeout + 5
        status = 0
        for worker, keeper in zip(self.workers, keepers):
            keeper.join(timeout=max(0.1, deadline - time.monotonic()))
            if not keeper.dead:
                log.error('worker %s (pid %s) did not stop in time: killing it',
                          worker.index, worker.process and worker.process.pid)
                self._signal(worker, signal.SIGKILL)
                keeper.join(timeout=5)
                status = 1
            # A worker stopped by our SIGTERM before it could catch it had nothing open.
            elif worker.final_code not in (None, 0, -signal.SIGTERM):
                log.error('worker %s (pid %s) %s while stopping', worker.index,
                          worker.process.pid, _describe_exit(worker.final_code))
                status = 1
        gevent.killall(keepers)
        for handle in handles:
            handle.cancel()
        if self.holder is not None:
            self.holder.close()
        if len(self.signals_seen) > 1:
            status = 1
        if status == 0:
            log.info('imchat stopped')
        return status


def worker_argv() -> List[str]:
    """The command that starts one worker: this same interpreter and script."""
    script = os.path.abspath(sys.argv[0])
    return [sys.executable, script] + sys.argv[1:]


def prepare(app) -> Optional['Supervisor']:
    """With IMCHAT_WORKERS above 1 (and this process not a worker): a Supervisor holding
    the port, ready to `run()`; None when this process serves by itself. Raises
    ValueError without a bus, OSError when the port is taken."""
    config = app.config
    if not wants_supervisor(config):
        return None
    count = worker_count(config)
    mode = sharing_mode()
    if mode == 'single':
        log.warning('IMCHAT_WORKERS=%s: several worker processes are not supported on %s;'
                    ' serving with one process', count, sys.platform)
        return None
    if not has_bus(config):
        raise ValueError('IMCHAT_WORKERS={} needs a bus between the workers (IMCHAT_BUS='
                         'redis://host:port/db): without one, users on different workers '
                         'could not reach each other'.format(count))
    supervisor = Supervisor(worker_argv(), count, config['HOST'], config['PORT'], mode,
                            config.get('SHUTDOWN_TIMEOUT', 5),
                            os.environ.get('IMCHAT_NODE_ID') or None)
    supervisor.hold_port()
    # The workers prepare nothing more: this process's create_app checked the settings
    # and the database and made the tables, once.
    app.extensions['imchat'].close()
    return supervisor
