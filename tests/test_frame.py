"""Unit tests of frame validation (no server, no database)."""
import json

import pytest

from imchat.service.frame import FrameError, parse_frame

LIMIT = 65536


def frame(**fields):
    base = {'id': 7, 'cmd': 10, 'dstid': 2}
    base.update(fields)
    return json.dumps(base)


@pytest.mark.parametrize('fields', [
    {'media': 1, 'content': 'hello'},
    {'media': 2, 'content': 'title', 'pic': 'http://x/a.jpg', 'url': 'http://x/a', 'memo': 'desc'},
    {'media': 3, 'url': '/mnt/a.mp3', 'amount': 40},
    {'media': 4, 'url': 'https://x/a.png'},
    {'media': 5, 'url': 'http://x/red?id=1', 'amount': 300, 'memo': 'luck'},
    {'media': 6, 'content': 'cry'},
    {'media': 7, 'url': 'http://x/a.html'},
    {'media': 8, 'pic': 'http://x/a.jpg', 'url': 'http://x/a.mp4'},
    {'media': 9, 'content': '10086', 'pic': 'http://x/avatar.jpg', 'memo': 'Hu Dali'},
    {'media': 100, 'content': '{"kind": "poll"}'},
])
def test_every_media_type_of_the_seed_is_accepted(fields):
    parsed = parse_frame(frame(**fields), LIMIT)
    assert parsed.media == fields['media'] and parsed.client_id == 7
    for name in ('content', 'pic', 'url', 'memo'):
        assert getattr(parsed, name) == fields.get(name, '')


@pytest.mark.parametrize('fields, reason', [
    ({'media': 1}, 'needs content'),
    ({'media': 1, 'content': '   '}, 'needs content'),
    ({'media': 3, 'url': '/mnt/a.mp3'}, 'needs amount'),
    ({'media': 3, 'url': '/mnt/a.mp3', 'amount': 0}, 'amount must be between'),
    ({'media': 3, 'amount': 4}, 'needs url'),
    ({'media': 4}, 'needs url'),
    ({'media': 4, 'url': 'javascript:alert(1)'}, 'url must be'),
    ({'media': 4, 'url': 'data:text/html,<b>'}, 'url must be'),
    ({'media': 5, 'amount': -5}, 'amount must be between'),
    ({'media': 7, 'url': 'http://a b'}, 'url must be'),
    ({'media': 9}, 'needs content'),
    ({'media': 100}, 'needs content or url'),
    ({'media': 55, 'content': 'x'}, 'unknown media'),
    ({'media': 'text', 'content': 'x'}, 'media must be a whole number'),
    ({'media': 1, 'content': {'a': 1}}, 'content must be text'),
    ({'media': 1, 'content': 'x' * 4001}, 'content is too long'),
    ({'media': 1, 'content': 'x', 'memo': 'm' * 141}, 'memo is too long'),
    ({'media': 1, 'content': 'a\x00b'}, 'NUL'),
    ({'media': 1, 'content': 'x', 'dstid': 0}, 'dstid must be between'),
    ({'media': 1, 'content': 'x', 'dstid': 'bob'}, 'dstid must be a whole number'),
    ({'media': 1, 'content': 'x', 'dstid': True}, 'dstid must be a whole number'),
])
def test_refusals_name_the_reason_and_keep_the_id(fields, reason):
    with pytest.raises(FrameError) as caught:
        parse_frame(frame(**fields), LIMIT)
    assert reason in caught.value.msg
    assert caught.value.client_id == 7


@pytest.mark.parametrize('data, reason', [
    ('not json', 'not valid JSON'),
    ('[1, 2]', 'JSON object'),
    ('{"id": 3}', 'cmd is required'),
    (b'\x00\x01', 'JSON text frames'),
])
def test_unreadable_frames(data, reason):
    with pytest.raises(FrameError) as caught:
        parse_frame(data, LIMIT)
    assert reason in caught.value.msg


@pytest.mark.parametrize('cmd', [2, 16, 99, '10x', None, 10.5])
def test_unknown_cmd(cmd):
    with pytest.raises(FrameError) as caught:
        parse_frame(frame(cmd=cmd, media=1, content='x'), LIMIT)
    assert 'unknown cmd' in caught.value.msg


def test_server_only_cmd():
    with pytest.raises(FrameError, match='server only'):
        parse_frame(frame(cmd=1), LIMIT)


def test_heartbeat_needs_nothing_else():
    assert parse_frame('{"cmd": 0}', LIMIT).cmd == 0


def test_numbers_as_strings_as_the_original_client_sends():
    parsed = parse_frame(json.dumps({'cmd': '10', 'dstid': '3', 'media': '1',
                                     'content': 'hi'}), LIMIT)
    assert (parsed.cmd, parsed.dstid, parsed.media) == (10, 3, 1)


def test_too_large_is_refused_with_its_id():
    with pytest.raises(FrameError) as caught:
        parse_frame(frame(media=1, content='x' * 200), 100)
    assert 'too large' in caught.value.msg and caught.value.client_id == 7


def test_client_written_userid_is_ignored():
    parsed = parse_frame(frame(media=1, content='x', userid=999), LIMIT)
    assert not hasattr(parsed, 'userid')


@pytest.mark.parametrize('client_id', ['x' * 65, 1.5, {'a': 1}, [1], True, 2 ** 64, -2 ** 64])
def test_an_id_no_ack_can_echo_is_refused_not_echoed(client_id):
    """Such a frame was stored and delivered with no acknowledgement at all (issue 25):
    now refused before anything is stored, with a reason and without the id."""
    text = '{"id": 18446744073709551616, "cmd": 10, "dstid": 2, "media": 1, "content": "x"}' \
        if client_id == 2 ** 64 else json.dumps(
            {'id': client_id, 'cmd': 10, 'dstid': 2, 'media': 1, 'content': 'x'})
    with pytest.raises(FrameError) as caught:
        parse_frame(text, LIMIT)
    assert caught.value.client_id is None and caught.value.reason == 'frame.id_invalid'
    assert parse_frame(json.dumps({'id': 'abc', 'cmd': 0}), LIMIT).client_id == 'abc'
