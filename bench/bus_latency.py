"""What crossing nodes adds to a message's delivery: one sender, one receiver on the
sender's node and one on another node, on a bus; prints latency percentiles of each.

    .venv/bin/python bench/bus_latency.py [--bus redis://127.0.0.1:6379/0 | --bus udp]
        [--messages 2000] [--rate 200] [--database mysql://root@127.0.0.1:3306]

Each message goes to a group of the two receivers; the time is from the send to the
frame's arrival, measured in this one process (one clock). Nodes are real server
processes on a throw-away database.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import gevent  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT]
from tests.harness import ServerProcess, free_port  # noqa: E402
from tests.wsclient import ChatClient  # noqa: E402


def node(name, database, bus, work):
    """A node as the bus tests start one (tests/test_bus.py), answering."""
    # Friends at once, as before friend requests (issue 22): it measures the bus.
    return ServerProcess(work, database, name=name, IMCHAT_BUS=bus, IMCHAT_NODE_ID=name,
                         IMCHAT_ACCESS_LOG=0, IMCHAT_WS_RATE=0,
                         IMCHAT_FRIEND_REQUESTS=0).start()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def drop_database(url):
    import pymysql

    from imchat.model.engine import parse_database_url

    params = parse_database_url(url)[1]
    name = params.pop('database')
    con = pymysql.connect(charset='utf8mb4', ssl_disabled=True, **params)
    try:
        con.cursor().execute('DROP DATABASE IF EXISTS `{}`'.format(name))
    finally:
        con.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--bus', default='redis://127.0.0.1:6379/0')
    parser.add_argument('--messages', type=int, default=2000)
    parser.add_argument('--rate', type=float, default=200, help='messages a second')
    parser.add_argument('--database', default='', help='mysql://... server (default SQLite)')
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix='imchat-bus-bench-')
    if args.database:
        database = '{}/imchat_bench_{}'.format(args.database.rstrip('/'), uuid.uuid4().hex[:8])
    else:
        database = 'sqlite:///{}/imchat.db'.format(work)
    if args.bus == 'udp':
        ports = [free_port(socket.SOCK_DGRAM) for _ in range(2)]
        buses = ['udp://127.0.0.1:{}?peers=127.0.0.1:{}'.format(ports[i], ports[1 - i])
                 for i in range(2)]
    else:
        buses = [args.bus + ('&' if '?' in args.bus else '?') + 'prefix=bench' +
                 uuid.uuid4().hex[:8]] * 2
    nodes = []
    try:
        nodes.append(node('bench0', database, buses[0], work))
        nodes.append(node('bench1', database, buses[1], work))
        sender, near, far = (nodes[0].api.register(str(13500000000 + n)) for n in range(3))
        community = nodes[0].api.post('/contact/createcommunity', {'name': 'bench'},
                                  sender)[1]['data']['id']
        for member in (near, far):
            nodes[0].api.post('/contact/joincommunity', {'dstid': community}, member)
        writer = ChatClient(nodes[0].ws_url(sender))
        receivers = {'local': ChatClient(nodes[0].ws_url(near)),
                     'remote': ChatClient(nodes[1].ws_url(far))}
        sent_at, arrived = {}, {name: {} for name in receivers}

        def receive(name, client):
            while len(arrived[name]) < args.messages:
                frame = client.recv(30)
                if frame.get('cmd') == 11:
                    arrived[name][frame['content']] = time.perf_counter()

        def drain_acks():
            for _ in range(args.messages):
                writer.recv(30)

        workers = [gevent.spawn(receive, name, c) for name, c in receivers.items()]
        workers.append(gevent.spawn(drain_acks))
        gevent.sleep(0.5)
        interval = 1.0 / args.rate
        start = time.perf_counter()
        for n in range(args.messages):
            gevent.sleep(max(0, start + n * interval - time.perf_counter()))
            key = str(n)
            sent_at[key] = time.perf_counter()
            writer.text(community, key, cmd=11)
        gevent.joinall(workers, timeout=60, raise_error=True)
        print('bus {}, database {}, {} messages at {}/s'.format(
            args.bus, 'mysql' if args.database else 'sqlite', args.messages, args.rate))
        figures = {}
        for name in receivers:
            ms = [(arrived[name][k] - sent_at[k]) * 1000 for k in sent_at]
            figures[name] = {p: percentile(ms, p) for p in (50, 90, 99)}
            print('  {:6s} p50 {:6.2f} ms  p90 {:6.2f} ms  p99 {:6.2f} ms'.format(
                name, *figures[name].values()))
        print('  cross-node adds: p50 {:+.2f} ms, p99 {:+.2f} ms'.format(
            figures['remote'][50] - figures['local'][50],
            figures['remote'][99] - figures['local'][99]))
    finally:
        for each in nodes:
            each.stop()
            fills = each.log().count('from the database')
            if fills:
                print('  {} filled {} gaps from the database'.format(node.name, fills))
        shutil.rmtree(work, ignore_errors=True)
        if args.database:
            drop_database(database)


if __name__ == '__main__':
    main()
