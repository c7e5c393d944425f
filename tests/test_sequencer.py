"""The bus's ordering core on its own: what it releases, and when."""
import pytest

from imchat.service.bus.sequencer import Sequencer
from imchat.service.bus.urls import BusURLError, bus_url_for_worker, parse_bus_url


def wire(msgid):
    return {'msgid': msgid, 'cmd': 10, 'userid': 1, 'dstid': 2}


class Recorder:
    def __init__(self):
        self.released = []
        self.wait_on = set()

    def __call__(self, item):
        self.released.append(item['msgid'])
        return item['msgid'] in self.wait_on


def test_a_later_id_waits_for_the_earlier_range_then_both_go_in_order():
    out = Recorder()
    seq = Sequencer(100, out)
    seq.hold(102, wire(102))
    seq.cover(102, 102)          # 101 is not accounted for yet
    assert out.released == [] and seq.done == 100
    seq.cover(101, 101)          # 101 concerned nobody here: only its range comes
    assert out.released == [102] and seq.done == 102


def test_a_gap_is_filled_from_rows_in_id_order_and_late_copies_are_dropped():
    out = Recorder()
    seq = Sequencer(0, out)
    seq.hold(3, wire(3))
    seq.cover(3, 3)
    seq.saw_position(4)
    assert seq.gap_age() >= 0 and seq.done == 0
    seq.fill(4, [(1, wire(1)), (3, wire(3)), (4, wire(4))])
    assert out.released == [1, 3, 4] and seq.done == 4
    seq.hold(1, wire(1))         # its own publish arriving after the fill
    seq.cover(1, 1)
    assert out.released == [1, 3, 4]


def test_a_pause_keeps_later_ids_until_resumed_with_what_was_missed():
    out = Recorder()
    out.wait_on = {2}
    seq = Sequencer(0, out)
    for msgid in (1, 2, 4):
        seq.hold(msgid, wire(msgid))
    seq.cover(1, 4)
    assert out.released == [1, 2] and seq.paused and seq.done == 2
    seq.cover(5, 5)
    assert out.released == [1, 2]
    seq.resume([(3, wire(3))])
    assert out.released == [1, 2, 3, 4] and seq.done == 5 and not seq.paused


@pytest.mark.parametrize('url, kind', [
    ('none', 'none'), ('', 'none'), ('redis://127.0.0.1:6379/2', 'redis'),
    ('udp://0.0.0.0:3000?peers=192.168.0.255:3000', 'udp')])
def test_bus_urls(url, kind):
    assert parse_bus_url(url)[0] == kind


def test_redis_channels_are_named_by_the_url_or_else_by_the_database():
    named = parse_bus_url('redis://127.0.0.1/0?prefix=prod')[1]['prefix']
    unnamed = parse_bus_url('redis://127.0.0.1/0')[1]['prefix']
    # None: bus.node takes the deployment id the database holds (test_bus.py shows two
    # deployments on one Redis never hear each other).
    assert named == 'imchat:prod:' and unnamed is None


@pytest.mark.parametrize('url, connects_to', [
    ('redis://:s3cret@10.0.0.5:6380/2', 'redis://:s3cret@10.0.0.5:6380/2'),
    ('redis://imchat:s3cret@10.0.0.5/2?prefix=p', 'redis://imchat:s3cret@10.0.0.5:6379/2'),
    ('rediss://:s3cret@redis.example/0?ssl_cert_reqs=required',
     'rediss://:s3cret@redis.example:6379/0?ssl_cert_reqs=required')])
def test_redis_urls_keep_their_password_and_tls(url, connects_to):
    from redis.connection import SSLConnection, parse_url

    from imchat.service.bus.redis import RedisTransport
    from imchat.service.bus.urls import redact

    kind, params = parse_bus_url(url)
    assert kind == 'redis' and params['url'] == connects_to
    assert parse_url(params['url'])['password'] == 's3cret'
    assert (parse_url(params['url']).get('connection_class') is SSLConnection) == \
        url.startswith('rediss')
    described = RedisTransport(params['url'], 'imchat:p:').describe()
    assert 's3cret' not in described and 's3cret' not in redact(url)


def test_a_replayed_or_stale_sequence_number_is_refused():
    from imchat.service.bus.udp import REPLAY_WINDOW, ReplayGuard

    now = [1000.0]
    guard = ReplayGuard(clock=lambda: now[0])
    start = int(now[0] * 1e6)
    assert not guard.fresh('a', start - REPLAY_WINDOW - 1)  # older than a start allows
    assert guard.fresh('a', start) and not guard.fresh('a', start)
    assert guard.fresh('a', start + 5) and guard.fresh('a', start + 3)  # out of order
    assert not guard.fresh('a', start + 3) and not guard.fresh('a', start + 5)
    assert guard.fresh('b', start + 3)  # per node
    assert guard.fresh('a', start + 3 * REPLAY_WINDOW)
    assert not guard.fresh('a', start + 6)  # now below the window


@pytest.mark.parametrize('url', ['kafka://x', 'udp://127.0.0.1?peers=a:1',
                                 'udp://127.0.0.1:3000?peers=nohostport', 'redis:///0'])
def test_bad_bus_urls_are_refused_clearly(url):
    with pytest.raises(BusURLError):
        parse_bus_url(url)


def test_this_nodes_own_copy_replaces_one_held_before_and_not_the_other_way():
    out = Recorder()
    released = []
    seq = Sequencer(0, lambda item: released.append(item) and False)
    seq.hold(1, {'msgid': 1, 'from': 'another node'})
    seq.hold(1, {'msgid': 1, 'from': 'here'}, preferred=True)
    seq.hold(1, {'msgid': 1, 'from': 'a late copy'})
    seq.cover(1, 1)
    assert [item['from'] for item in released] == ['here'] and out.released == []


@pytest.mark.parametrize('url, index, expected', [
    ('udp://0.0.0.0:3000?peers=10.0.0.2:3000', 2,
     'udp://0.0.0.0:3001?peers=10.0.0.2:3000,127.0.0.1:3000,127.0.0.1:3002'),
    ('udp://10.0.0.1:4000', 1, 'udp://10.0.0.1:4000?peers=10.0.0.1:4001,10.0.0.1:4002'),
    ('redis://127.0.0.1:6379/0', 2, 'redis://127.0.0.1:6379/0'),
    ('none', 3, 'none')])
def test_each_worker_of_a_udp_bus_gets_its_own_port_and_its_siblings_as_peers(url, index,
                                                                              expected):
    assert bus_url_for_worker(url, index, 3) == expected
    kind, params = parse_bus_url(expected)
    if kind == 'udp':
        assert params['bind'][1] == int(url.split(':')[2].split('?')[0]) + index - 1


@pytest.mark.slow  # waits an outage and its recovery
def test_a_database_outage_while_filling_gaps_is_one_line_each_way(caplog):
    """Issue 25: a 75-line traceback about once a second during a database outage."""
    import logging
    import types

    import gevent

    from imchat.service.bus.gaps import GapFiller

    state = {'down': True, 'calls': 0}

    class Stream:
        @staticmethod
        def get(name):
            state['calls'] += 1
            if state['down']:
                raise ConnectionRefusedError('the database is down')
            return types.SimpleNamespace(pos=0)

    db = types.SimpleNamespace(Stream=Stream)
    filler = GapFiller(db, Sequencer(0, lambda item: False), types.SimpleNamespace(up=True))
    caplog.set_level(logging.INFO, logger='imchat.service.bus')
    filler.start()
    try:
        while state['calls'] < 3:
            gevent.sleep(0.1)
        state['down'] = False
        while 'answering again' not in caplog.text:
            gevent.sleep(0.1)
    finally:
        filler.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if 'unavailable' in line]) == 1, lines
    assert len([line for line in lines if 'answering again' in line]) == 1, lines
    assert len(lines) == 2 and 'Traceback' not in caplog.text, lines
