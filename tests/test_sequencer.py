"""The bus's ordering core on its own: what it releases, and when."""
import pytest

from imchat.service.bus import BusURLError, Sequencer, parse_bus_url


def wire(msgid):
    return {'msgid': msgid, 'cmd': 10, 'userid': 1, 'dstid': 2}


class Recorder:
    def __init__(self):
        self.released = []
        self.wait_on = set()

    def __call__(self, wire, outgoing, origin):
        self.released.append(wire['msgid'])
        return wire['msgid'] in self.wait_on


def test_a_later_id_waits_for_the_earlier_range_then_both_go_in_order():
    out = Recorder()
    seq = Sequencer(100, out)
    seq.hold(wire(102), None)
    seq.cover(102, 102)          # 101 is not accounted for yet
    assert out.released == [] and seq.done == 100
    seq.cover(101, 101)          # 101 concerned nobody here: only its range comes
    assert out.released == [102] and seq.done == 102


def test_a_gap_is_filled_from_rows_in_id_order_and_late_copies_are_dropped():
    out = Recorder()
    seq = Sequencer(0, out)
    seq.hold(wire(3), 'held')
    seq.cover(3, 3)
    seq.saw_position(4)
    assert seq.gap_age() >= 0 and seq.done == 0
    seq.fill(4, [(1, (wire(1), 'db', None)), (3, (wire(3), 'db', None)),
                 (4, (wire(4), 'db', None))])
    assert out.released == [1, 3, 4] and seq.done == 4
    seq.hold(wire(1), 'late')    # its own publish arriving after the fill
    seq.cover(1, 1)
    assert out.released == [1, 3, 4]


def test_a_pause_keeps_later_ids_until_resumed_with_what_was_missed():
    out = Recorder()
    out.wait_on = {2}
    seq = Sequencer(0, out)
    for msgid in (1, 2, 4):
        seq.hold(wire(msgid), None)
    seq.cover(1, 4)
    assert out.released == [1, 2] and seq.paused and seq.done == 2
    seq.cover(5, 5)
    assert out.released == [1, 2]
    seq.resume([(3, (wire(3), None, None))])
    assert out.released == [1, 2, 3, 4] and seq.done == 5 and not seq.paused


@pytest.mark.parametrize('url, kind', [
    ('none', 'none'), ('', 'none'), ('redis://127.0.0.1:6379/2', 'redis'),
    ('udp://0.0.0.0:3000?peers=192.168.0.255:3000', 'udp')])
def test_bus_urls(url, kind):
    assert parse_bus_url(url, 'sqlite:///x.db')[0] == kind


def test_redis_channels_are_prefixed_per_deployment():
    one = parse_bus_url('redis://127.0.0.1/0', 'mysql://root@h/a')[1]['prefix']
    two = parse_bus_url('redis://127.0.0.1/0', 'mysql://root@h/b')[1]['prefix']
    named = parse_bus_url('redis://127.0.0.1/0?prefix=prod', 'x')[1]['prefix']
    assert one != two and named == 'imchat:prod:'


@pytest.mark.parametrize('url', ['kafka://x', 'udp://127.0.0.1?peers=a:1',
                                 'udp://127.0.0.1:3000?peers=nohostport', 'redis:///0'])
def test_bad_bus_urls_are_refused_clearly(url):
    with pytest.raises(BusURLError):
        parse_bus_url(url, '')
