"""Property-based tests (hypothesis) of what takes input from anyone: the frame parser,
every form endpoint, and the upload type detection. No input gives a 500, a traceback
or an unencodable answer: only a value or a refusal.

A few thousand cases run in the normal suite. For a long run (100,000 cases each):

    bash tests/run.sh tests/test_properties.py --hypothesis-profile=long
"""
import io
import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imchat.service.frame import FrameError, parse_frame
from imchat.protocol import ack_refused
from imchat.service.mediatypes import sniff_media_type

settings.register_profile('long', max_examples=100000, deadline=None, database=None)
LONG = settings.default.max_examples >= 100000
LIMIT = 65536
# Thousands of cases each (the form endpoints: 1200 requests on each database): from
# seconds to minutes, so not in the fast part.
pytestmark = pytest.mark.slow


def examples(normal):
    return 100000 if LONG else normal


FAST = dict(deadline=None, database=None)

# JSON values, nested a little, with every kind of text (lone surrogates included, which
# json.dumps escapes as \udXXX) and numbers of any size.
scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2 ** 70, 2 ** 70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.text(st.characters(min_codepoint=0xd800, max_codepoint=0xdfff), max_size=3)
           | st.from_regex(r'-?[0-9]{1,25}', fullmatch=True))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
FRAME_KEYS = ['id', 'cmd', 'dstid', 'media', 'content', 'pic', 'url', 'memo', 'amount',
              'userid', 'target', 'msgid']
frames = st.dictionaries(st.sampled_from(FRAME_KEYS) | st.text(max_size=6), json_values,
                         max_size=10)
# Frames close to valid ones, so the checks past the first ones run too.
near_valid = st.fixed_dictionaries(
    {'id': scalars, 'cmd': st.sampled_from([0, 10, 11, '10', '11', 12, 13, 14, 1]),
     'dstid': scalars, 'media': st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 100, '1'])},
    optional={'content': scalars, 'url': scalars, 'pic': scalars, 'memo': scalars,
              'amount': scalars})


def check_frame(text):
    try:
        frame = parse_frame(text, LIMIT)
    except FrameError as error:
        ack_refused(error.client_id, error.msg)  # encodes it as UTF-8: it must be sendable
        return
    for name in ('content', 'pic', 'url', 'memo'):
        value = getattr(frame, name, '')
        if isinstance(value, str):
            value.encode('utf-8')  # storable and sendable
    json.dumps({'id': frame.client_id}, ensure_ascii=False).encode('utf-8')


@settings(max_examples=examples(1500), **FAST)
@given(frames | near_valid)
def test_frame_parser_answers_any_json_object(raw):
    check_frame(json.dumps(raw))


@settings(max_examples=examples(800), **FAST)
@given(json_values | st.text(max_size=200)
       | st.text(alphabet='[]{}",:0123456789\\ud', max_size=300))
def test_frame_parser_answers_any_text(data):
    check_frame(data if isinstance(data, str) else json.dumps(data))


@settings(max_examples=examples(300), **FAST)
@given(st.integers(30, 3000), st.sampled_from(['[', '{"a":', '[{"a":']))
def test_frame_parser_refuses_deep_nesting(depth, opener):
    with pytest.raises(FrameError):
        parse_frame(opener * depth, LIMIT)


KNOWN_HEADS = [b'\x89PNG\r\n\x1a\n', b'\xff\xd8\xff', b'GIF89a', b'RIFF\x00\x00\x00\x00WEBP',
               b'RIFF\x00\x00\x00\x00WAVE', b'OggS', b'\x1a\x45\xdf\xa3',
               b'\x00\x00\x00\x18ftyp', b'ID3', b'\xff\xfb']


@settings(max_examples=examples(1500), **FAST)
@given(st.sampled_from(KNOWN_HEADS), st.binary(max_size=600))
def test_upload_type_detection_answers_any_bytes(head, rest):
    for data in (head + rest, rest):
        media = sniff_media_type(data)
        assert media is None or media.mime


FIELD_NAMES = ['mobile', 'passwd', 'nickname', 'avatar', 'sex', 'memo', 'id', 'dstid', 'name',
               'icon', 'cate', 'cmd', 'before', 'limit', 'memberid', 'filetype', 'userid',
               'ownerid', 'oldpasswd', 'newpasswd', 'file']
form_values = (st.text(max_size=40) | st.from_regex(r'[+-]?[0-9]{1,25}', fullmatch=True)
               | st.sampled_from(['', ' ', '0', '-1', '1', 'W', '\x00', '\ud800', 'null']))


@pytest.fixture
def endpoints(app):
    skip = {'/user/logout', '/chat'}  # logout would end the token the cases use
    return sorted(rule.rule for rule in app.url_map.iter_rules()
                  if 'POST' in rule.methods and not rule.arguments and rule.rule not in skip)


@settings(max_examples=examples(1200), suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                              HealthCheck.too_slow], **FAST)
@given(data=st.data())
def test_every_form_endpoint_answers_any_fields(app, client, auth, endpoints, caplog, data):
    if not hasattr(app, '_property_account'):
        app._property_account = auth.register()
    account = app._property_account
    path = data.draw(st.sampled_from(endpoints))
    fields = data.draw(st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=5),
                                       form_values | json_values, max_size=6))
    how = data.draw(st.sampled_from(['form', 'json', 'query', 'multipart']))
    headers = {'Authorization': 'Bearer ' + account.token}
    if how == 'json':
        response = client.post(path, data=json.dumps(fields), headers=dict(
            headers, **{'Content-Type': 'application/json'}))
    else:
        flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        flat = {k.encode('utf-8', 'replace').decode('utf-8', 'replace'):
                v.encode('utf-8', 'replace').decode('utf-8', 'replace') for k, v in flat.items()}
        if how == 'query':
            response = client.post(path, query_string=flat, headers=headers)
        elif how == 'multipart':
            flat['file'] = (io.BytesIO(flat.pop('file', 'x').encode()), 'a.png')
            response = client.post(path, data=flat, headers=headers,
                                   content_type='multipart/form-data')
        else:
            response = client.post(path, data=flat, headers=headers)
    assert response.status_code < 500, (path, how, fields, response.get_data(as_text=True))
    body = response.get_json()
    assert body is not None and body['code'] in (0, -1), (path, body)
    traced = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not traced, traced
