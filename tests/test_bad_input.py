"""Bad input found by fault runs against e50eb6f: each gets a clear refusal (a `code: -1`
ack, a 4400 close, a 400 naming the field), never a 500, a traceback or a closed
socket, and the connection goes on working."""
import json
import logging

import pytest
from pony.orm import db_session

from tests.test_chat import connect, pair  # noqa: F401  (fixtures)
from tests.wsclient import ChatClient

INT64_OVER = str(1 << 63)  # 9223372036854775808: 19 digits, one past the largest id


def no_server_errors(caplog):
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


def message_count(app):
    db = app.extensions['imchat'].db
    with db_session:
        return db.Message.select().count()


def deep(levels):
    return '[' * levels + ']' * levels


BAD_FRAMES = [
    ('[' * 100000, 'nested too deeply'),
    ('{"id": 5, "cmd": 10, "dstid": 2, "media": 1, "content": %s}' % deep(5000),
     'nested too deeply'),
    ('{"id": 5, "cmd": 10, "dstid": 2, "media": 1, "content": "x", "extra": %s}' % deep(40),
     'nested too deeply'),
    ('{"id": "\\ud800", "cmd": 10, "dstid": 2, "media": 1, "content": "x"}', 'lone surrogate'),
    ('{"id": "\\udfff\\ud800abcdefgh", "cmd": 10, "dstid": 2, "media": 1, "content": "x"}',
     'lone surrogate'),
    ('{"id": 5, "cmd": "\\u00b2"}', 'unknown cmd'),
    ('{"id": 5, "cmd": "\u0663"}', 'unknown cmd'),
    ('{"id": 5, "cmd": "%s"}' % ('1' * 5000), 'unknown cmd'),
    ('{"id": 5, "cmd": %s}' % ('1' * 5000), 'not valid JSON'),
    ('{"id": 5, "cmd": 10, "dstid": "%s", "media": 1, "content": "x"}' % INT64_OVER,
     'dstid must be'),
    ('{"id": 5, "cmd": 10, "dstid": %s, "media": 1, "content": "x"}' % ('9' * 30),
     'dstid must be'),
    ('{"id": 5, "cmd": 10, "dstid": 2, "media": 1, "content": "a\\ud800b"}', 'lone surrogate'),
    ('{"id": 5, "cmd": 10, "dstid": 2, "media": 4, "url": "/mnt/\\udc00.png"}',
     'lone surrogate'),
    ('{"id": 5, "cmd": 10, "dstid": 2, "media": 1, "content": "x", "memo": "\\ud83d"}',
     'lone surrogate'),
]


@pytest.mark.parametrize('raw, reason', BAD_FRAMES, ids=range(len(BAD_FRAMES)))
def test_bad_frames_are_refused_and_the_connection_stays_up(app, pair, connect, caplog,  # noqa: F811
                                                            raw, reason):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    stored = message_count(app)
    a.send_raw(raw.replace('"dstid": 2', '"dstid": {}'.format(bob.id)))
    ack = a.recv_ack()
    assert ack['code'] == -1 and reason in ack['msg'], ack
    a.text(bob.id, 'still here')
    assert a.recv_ack()['code'] == 0
    assert b.recv()['content'] == 'still here'
    assert message_count(app) == stored + 1
    no_server_errors(caplog)


def test_a_surrogate_pair_is_one_character_and_is_kept(pair, connect):  # noqa: F811
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    a.send_raw('{"id": "c-pair-0001", "cmd": 10, "dstid": %d, "media": 1, '
               '"content": "\\ud83d\\ude00"}' % bob.id)
    assert a.recv_ack()['code'] == 0
    assert b.recv()['content'] == '\U0001F600'


def test_a_lone_surrogate_among_good_messages_refuses_only_itself(app, pair, connect,  # noqa: F811
                                                                  caplog):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    for n in range(20):
        content = 'bad \\ud800' if n == 7 else 'good {}'.format(n)
        a.send_raw('{"id": %d, "cmd": 10, "dstid": %d, "media": 1, "content": "%s"}'
                   % (n, bob.id, content))
    acks = {}
    while len(acks) < 20:
        ack = a.recv_ack()
        acks[ack.get('id', 7)] = ack
    assert acks[7]['code'] == -1 and 'lone surrogate' in acks[7]['msg']
    assert all(acks[n]['code'] == 0 for n in range(20) if n != 7)
    got = [b.recv()['content'] for _ in range(19)]
    assert got == ['good {}'.format(n) for n in range(20) if n != 7]
    no_server_errors(caplog)


@pytest.mark.parametrize('since', [INT64_OVER, '9' * 19, '-1', '\u0663', '1' * 5000])
def test_a_since_out_of_range_closes_with_4400(live_server, pair, since, caplog):  # noqa: F811
    alice, _ = pair
    client = ChatClient(live_server.ws_url(alice, since=since))
    code, reason = client.close_code()
    assert code == 4400 and 'since' in reason
    no_server_errors(caplog)


# Every HTTP call that reads fields, with a body nested far too deep for a recursive
# JSON decoder (under the 64 KB body limit, which refuses larger ones with a 413).
# /attach/upload reads no body but multipart, and refuses any other before reading it
# (test_upload.py); it stays among "every other POST route" below.
CALLS = ['/user/register', '/user/login', '/user/logout', '/user/find', '/user/update',
         '/contact/addfriend', '/contact/loadfriend', '/contact/createcommunity',
         '/contact/joincommunity', '/contact/loadcommunity', '/contact/members',
         '/chat/history']


def post_json(client, path, body, token=None):
    headers = {'Content-Type': 'application/json'}
    if token:
        headers['Authorization'] = 'Bearer ' + token
    return client.post(path, data=body, headers=headers)


@pytest.mark.parametrize('body', [deep(5000), '{"a": %s}' % deep(30000),
                                  '{"nickname": "x", "x": %s}' % deep(40)])
def test_a_deeply_nested_json_body_is_a_400_on_every_call(app, client, auth, caplog, body):
    account = auth.register()
    for path in CALLS:
        response = post_json(client, path, body, account.token)
        assert response.status_code == 400, (path, response.json)
        assert response.json['field'] == 'body' and 'nested' in response.json['msg'], path
    # Every other POST route (added since this list) may refuse it as it likes, but
    # never with a fault of ours.
    for rule in app.url_map.iter_rules():
        if 'POST' in rule.methods and not rule.arguments and rule.rule not in CALLS:
            response = post_json(client, rule.rule, body, account.token)
            assert response.status_code < 500, (rule.rule, response.status_code)
    no_server_errors(caplog)


# (/attach/upload takes multipart only, and refuses a JSON body before reading it.)
SURROGATE_FIELDS = [
    ('/user/register', {'mobile': '13812345678', 'passwd': 'secret-pass'}, 'mobile'),
    ('/user/register', {'mobile': '13812345678', 'passwd': 'secret-pass'}, 'passwd'),
    ('/user/register', {'mobile': '13812345678', 'passwd': 'secret-pass'}, 'nickname'),
    ('/user/register', {'mobile': '13812345678', 'passwd': 'secret-pass'}, 'avatar'),
    ('/user/register', {'mobile': '13812345678', 'passwd': 'secret-pass'}, 'sex'),
    ('/user/register', {'mobile': '13812345678', 'passwd': 'secret-pass'}, 'memo'),
    ('/user/login', {'mobile': '13812345678', 'passwd': 'secret-pass'}, 'passwd'),
    ('/user/update', {}, 'nickname'),
    ('/user/update', {}, 'avatar'),
    ('/user/update', {}, 'memo'),
    ('/contact/addfriend', {}, 'mobile'),
    ('/contact/addfriend', {}, 'dstid'),
    ('/contact/createcommunity', {'name': 'hikers'}, 'name'),
    ('/contact/createcommunity', {'name': 'hikers'}, 'icon'),
    ('/contact/createcommunity', {'name': 'hikers'}, 'memo'),
    ('/contact/joincommunity', {}, 'dstid'),
    ('/chat/history', {'cmd': 10, 'dstid': 1}, 'before'),
    ('/user/find', {}, 'id'),
]


@pytest.mark.parametrize('path, fields, name', SURROGATE_FIELDS)
def test_a_lone_surrogate_in_any_json_field_is_a_400_naming_it(client, auth, caplog,
                                                               path, fields, name):
    account = auth.register()
    body = json.dumps(dict(fields, **{name: 'a\ud800b'}))  # json.dumps escapes it
    assert '\\ud800' in body
    response = post_json(client, path, body, account.token)
    assert response.status_code == 400, response.json
    assert response.json['field'] == name, response.json
    no_server_errors(caplog)


@pytest.mark.parametrize('where', ['json', 'query'])
def test_a_token_with_a_lone_surrogate_is_a_401(client, caplog, where):
    if where == 'json':
        response = post_json(client, '/contact/loadfriend', '{"token": "\\ud800abc"}')
    else:
        response = client.post('/contact/loadfriend?token=%ED%A0%80abc')
    assert response.status_code == 401, response.json
    no_server_errors(caplog)


ID_FIELDS = [
    ('/user/find', {}, 'id'),
    ('/contact/addfriend', {}, 'dstid'),
    ('/contact/joincommunity', {}, 'dstid'),
    ('/contact/members', {}, 'dstid'),
    ('/chat/history', {'cmd': 10}, 'dstid'),
    ('/chat/history', {'cmd': 10, 'dstid': 1}, 'before'),
    ('/chat/history', {'dstid': 1}, 'cmd'),
]


@pytest.mark.parametrize('value', [INT64_OVER, '9' * 19, '-' + INT64_OVER + '1'])
@pytest.mark.parametrize('path, fields, name', ID_FIELDS)
@pytest.mark.parametrize('encoding', ['form', 'json-string', 'json-number'])
def test_ids_past_64_bits_are_a_400_naming_the_field(client, auth, caplog, path, fields, name,
                                                     value, encoding):
    account = auth.register()
    if encoding == 'form':
        response = client.post(path, data=dict(fields, **{name: value}), headers=account.headers)
    else:
        body = dict(fields, **{name: value if encoding == 'json-string' else int(value)})
        response = post_json(client, path, json.dumps(body), account.token)
    assert response.status_code == 400, response.json
    assert response.json['field'] == name, response.json
    no_server_errors(caplog)


def test_a_lone_surrogate_as_the_claimed_userid_is_a_403(client, auth, caplog):
    """Found by tests/test_properties.py: the refusal quoted it and could not be sent."""
    account = auth.register()
    response = post_json(client, '/contact/loadfriend', '{"userid": "\\ud800"}', account.token)
    assert response.status_code == 403, response.get_data()
    assert '\\ud800' in response.json['msg']
    no_server_errors(caplog)
