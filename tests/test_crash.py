"""Crash and restart: a real server process killed with SIGKILL in the middle of
traffic, then started again, several times in a row. No acknowledged message is lost:
a receiver that reconnects with `since` (its highest msgid) gets every acknowledged
message exactly once."""

import gevent
import pytest

from tests.harness import ServerProcess, http
from tests.wsclient import ChatClient

ROUNDS = 3
ACKS_BEFORE_KILL = 25


def crash_server(database_url, tmp_path):
    return ServerProcess(tmp_path, database_url, IMCHAT_LOG_LEVEL='WARNING',
                         IMCHAT_WS_RATE=0, IMCHAT_ACCESS_LOG=0)


def call(base, path, **fields):
    status, answer = http(base + path, fields, timeout=30)
    assert status == 200, answer
    return answer['data']


@pytest.mark.process
@pytest.mark.slow
def test_kill_9_during_traffic_loses_no_acknowledged_message(database_url, tmp_path):
    server = crash_server(database_url, tmp_path).start()
    port = server.port
    try:
        alice = call(server.url, '/user/register', mobile='13600000001', passwd='secret-pass')
        bob = call(server.url, '/user/register', mobile='13600000002', passwd='secret-pass')
        call(server.url, '/contact/addfriend', token=alice['token'], dstid=bob['id'])
        acked, received, highest = [], [], 0
        for round_ in range(ROUNDS):
            url = 'ws://127.0.0.1:{}/chat?id={}&token={}'
            receiver = ChatClient((url + '&since={}').format(port, bob['id'], bob['token'],
                                                             highest), timeout=30)
            sender = ChatClient(url.format(port, alice['id'], alice['token']), timeout=30)
            acked_this_round = []

            def send_until_killed(round_=round_):
                n = 0
                try:
                    while True:
                        sender.send(id='c-crash-{}-{:06d}'.format(round_, n), cmd=10,
                                    dstid=bob['id'], media=1, content='r{} m{}'.format(round_, n))
                        ack = sender.recv(timeout=30)
                        while ack.get('cmd') != 1:  # presence and other events
                            ack = sender.recv(timeout=30)
                        assert ack['code'] == 0, ack
                        acked_this_round.append(ack['msgid'])
                        n += 1
                except Exception:
                    return  # the server is gone

            def receive_until_killed():
                try:
                    while True:
                        message = receiver.recv(timeout=60)
                        if message.get('cmd') == 10:
                            received.append(message['msgid'])
                except Exception:
                    return
            sending = gevent.spawn(send_until_killed)
            receiving = gevent.spawn(receive_until_killed)
            deadline = gevent.Timeout(120)
            deadline.start()
            try:
                while len(acked_this_round) < ACKS_BEFORE_KILL:
                    assert not sending.dead, 'the sender stopped early'
                    gevent.sleep(0.01)
            finally:
                deadline.cancel()
            server.kill()  # in the middle of sending
            gevent.joinall([sending, receiving], timeout=60)
            sender.close()
            receiver.close()
            acked.extend(acked_this_round)
            if received:
                highest = max(received)
            server.start()  # the same port, database and log

        # One last reconnect with `since` collects what the last crash cut off.
        receiver = ChatClient('ws://127.0.0.1:{}/chat?id={}&token={}&since={}'.format(
            port, bob['id'], bob['token'], highest), timeout=30)
        try:
            while not set(acked) <= set(received):
                message = receiver.recv(timeout=30)
                if message.get('cmd') == 10:
                    received.append(message['msgid'])
        finally:
            receiver.close()
    finally:
        server.stop()
    assert len(acked) >= ROUNDS * ACKS_BEFORE_KILL
    assert set(acked) <= set(received)
    assert len(received) == len(set(received)), 'a message arrived twice'
    assert received == sorted(received)
