import json

import pytest

from imchat.util.clock import now_ms
from tests.conftest import Auth


def test_register_returns_profile_and_token(client):
    response = client.post('/user/register', data={'mobile': '13900000001', 'passwd': 'secret-1',
                                                    'nickname': 'Alice', 'sex': 'W',
                                                    'memo': 'hi'})
    assert response.status_code == 200
    body = response.json
    assert body['code'] == 0
    user = body['data']
    assert user['id'] > 0
    assert user['nickname'] == 'Alice' and user['sex'] == 'W' and user['memo'] == 'hi'
    assert len(user['token']) >= 40
    assert 'passwd' not in user and 'salt' not in user


def test_register_generates_nickname(client):
    user = client.post('/user/register', data={'mobile': '13900000002',
                                                'passwd': 'secret-1'}).json['data']
    assert user['nickname'].startswith('user') and len(user['nickname']) == 10
    assert user['sex'] == 'U'


@pytest.mark.parametrize('body_kind', ['form', 'json', 'multipart'])
def test_register_accepts_every_body_kind(client, body_kind):
    fields = {'mobile': '13900000003', 'passwd': 'secret-1'}
    if body_kind == 'json':
        response = client.post('/user/register', json=fields)
    elif body_kind == 'multipart':
        response = client.post('/user/register', data=fields, content_type='multipart/form-data')
    else:
        response = client.post('/user/register', data=fields)
    assert response.status_code == 200, response.json


def test_mobile_registers_once(client, auth):
    auth.register(mobile='13900000004')
    response = client.post('/user/register', data={'mobile': '13900000004', 'passwd': 'other-pw'})
    assert response.status_code == 409
    assert response.json == {'code': -1, 'msg': 'mobile 13900000004 is already registered',
                             'field': 'mobile', 'reason': 'conflict.mobile_registered'}


@pytest.mark.parametrize('fields, field', [
    ({'passwd': 'secret-1'}, 'mobile'),
    ({'mobile': 'abc', 'passwd': 'secret-1'}, 'mobile'),
    ({'mobile': '123', 'passwd': 'secret-1'}, 'mobile'),
    ({'mobile': '1' * 30, 'passwd': 'secret-1'}, 'mobile'),
    ({'mobile': '13900000005'}, 'passwd'),
    ({'mobile': '13900000005', 'passwd': '12345'}, 'passwd'),
    ({'mobile': '13900000005', 'passwd': 'x' * 200}, 'passwd'),
    ({'mobile': '13900000005', 'passwd': 'secret-1', 'sex': 'X'}, 'sex'),
    ({'mobile': '13900000005', 'passwd': 'secret-1', 'nickname': 'n' * 41}, 'nickname'),
    ({'mobile': '13900000005', 'passwd': 'secret-1', 'memo': 'm' * 141}, 'memo'),
    ({'mobile': '13900000005', 'passwd': 'secret-1', 'avatar': 'a' * 501}, 'avatar'),
    ({'mobile': ['13900000005'], 'passwd': 'secret-1'}, 'mobile'),
])
def test_register_refuses_bad_fields(client, fields, field):
    response = client.post('/user/register', json=fields)
    assert response.status_code == 400
    assert response.json['code'] == -1
    assert response.json['field'] == field
    assert response.json['msg'].startswith(field + ': ')


def test_malformed_json_body_is_a_clear_error(client):
    response = client.post('/user/register', data='{"mobile": ', content_type='application/json')
    assert response.status_code == 400
    assert response.json['code'] == -1 and 'JSON' in response.json['msg']


def test_json_body_must_be_an_object(client):
    response = client.post('/user/register', data=json.dumps([1, 2]),
                           content_type='application/json')
    assert response.status_code == 400 and response.json['field'] == 'body'


def test_password_is_hashed_with_scrypt(app, auth):
    account = auth.register(passwd='plain-secret')
    from pony.orm import db_session
    with db_session:
        stored = app.extensions['imchat'].db.User[account.id].passwd
    assert stored.startswith('scrypt$') and 'plain-secret' not in stored


def test_login_returns_id_and_fresh_token(client, auth):
    account = auth.register()
    response = client.post('/user/login', data={'mobile': account.mobile, 'passwd': account.passwd})
    assert response.status_code == 200
    data = response.json['data']
    assert data['id'] == account.id
    assert data['token'] and data['token'] != account.token


def test_each_login_keeps_other_devices_logged_in(client, auth):
    account = auth.register()
    phone = auth.login(account)
    laptop = auth.login(account)
    for device in (account, phone, laptop):
        assert client.post('/user/find', data={'id': account.id},
                           headers=device.headers).status_code == 200


def test_login_unknown_user(client):
    response = client.post('/user/login', data={'mobile': '13911111111', 'passwd': 'secret-1'})
    assert response.status_code == 401
    assert response.json == {'code': -1, 'msg': 'wrong mobile or password',
                             'reason': 'auth.wrong_password'}


def test_login_wrong_password(client, auth):
    account = auth.register()
    response = client.post('/user/login', data={'mobile': account.mobile, 'passwd': 'wrong-pass'})
    assert response.status_code == 401 and response.json['code'] == -1


def test_login_attempts_are_limited(app, client, auth):
    account = auth.register()
    limit = app.config['LOGIN_ATTEMPTS']
    for _ in range(limit):
        client.post('/user/login', data={'mobile': account.mobile, 'passwd': 'wrong-pass'})
    response = client.post('/user/login', data={'mobile': account.mobile,
                                                 'passwd': account.passwd})
    assert response.status_code == 429 and response.json['code'] == -1


def test_missing_token(client):
    response = client.post('/contact/loadfriend')
    assert response.status_code == 401
    assert response.json['code'] == -1 and 'token' in response.json['msg']


def test_invalid_token(client):
    response = client.post('/contact/loadfriend', headers={'Authorization': 'Bearer nope'})
    assert response.status_code == 401 and response.json['code'] == -1


@pytest.mark.parametrize('where', ['header', 'field', 'query', 'json'])
def test_token_accepted_from_header_field_query_or_json(client, auth, where):
    account = auth.register()
    if where == 'header':
        response = client.post('/contact/loadfriend', headers=account.headers)
    elif where == 'field':
        response = client.post('/contact/loadfriend', data={'token': account.token})
    elif where == 'query':
        response = client.get('/contact/loadfriend?token=' + account.token)
    else:
        response = client.post('/contact/loadfriend', json={'token': account.token})
    assert response.status_code == 200 and response.json['code'] == 0


def test_expired_token(app, client, auth):
    account = auth.register()
    from pony.orm import db_session
    db = app.extensions['imchat'].db
    with db_session:
        for token in db.Token.select(lambda t: t.userid == account.id):
            token.expireat = now_ms() - 1
    response = client.post('/contact/loadfriend', headers=account.headers)
    assert response.status_code == 401 and 'expired' in response.json['msg']


def test_token_lifetime_is_configurable(app, auth):
    app.extensions['imchat'].users.token_ttl_ms = 60 * 1000
    account = auth.register()
    from pony.orm import db_session
    with db_session:
        token = app.extensions['imchat'].db.Token.select(lambda t: t.userid == account.id).first()
        assert 59 * 1000 <= token.expireat - token.createat <= 60 * 1000


def test_logout_ends_only_that_token(client, auth):
    account = auth.register()
    other = auth.login(account)
    assert client.post('/user/logout', headers=account.headers).json['code'] == 0
    response = client.post('/contact/loadfriend', headers=account.headers)
    assert response.status_code == 401
    assert client.post('/contact/loadfriend', headers=other.headers).status_code == 200


def test_tokens_are_stored_hashed(app, auth):
    account = auth.register()
    from pony.orm import db_session, select
    with db_session:
        keys = select(t.key for t in app.extensions['imchat'].db.Token)[:]
    assert account.token not in keys


def test_find_returns_public_profile_only(client, auth):
    alice = auth.register(nickname='alice')
    bob = auth.register(nickname='bob')
    response = client.post('/user/find', data={'id': alice.id}, headers=bob.headers)
    assert response.status_code == 200
    profile = response.json['data']
    assert set(profile) == {'id', 'nickname', 'avatar', 'sex', 'memo', 'online'}
    assert profile['nickname'] == 'alice'


def test_find_self_includes_own_mobile(client, auth):
    alice = auth.register()
    profile = client.get('/user/find?id={}'.format(alice.id), headers=alice.headers).json['data']
    assert profile['mobile'] == alice.mobile and 'passwd' not in profile


def test_find_unknown_user(client, auth):
    alice = auth.register()
    response = client.post('/user/find', data={'id': 999999}, headers=alice.headers)
    assert response.status_code == 404 and response.json['code'] == -1


def test_find_bad_id(client, auth):
    alice = auth.register()
    response = client.post('/user/find', data={'id': 'x1'}, headers=alice.headers)
    assert response.status_code == 400 and response.json['field'] == 'id'


def test_spoofed_userid_is_forbidden(client, auth):
    alice = auth.register()
    bob = auth.register()
    response = client.post('/contact/addfriend', data={'userid': bob.id, 'dstid': alice.id},
                           headers=alice.headers)
    assert response.status_code == 403 and response.json['code'] == -1
    response = client.post('/contact/createcommunity', data={'ownerid': bob.id, 'name': 'x'},
                           headers=alice.headers)
    assert response.status_code == 403


def test_own_userid_is_fine(client, auth):
    alice = auth.register()
    response = client.post('/contact/loadfriend', data={'userid': alice.id}, headers=alice.headers)
    assert response.status_code == 200


def test_update_own_profile(client, auth):
    alice = auth.register()
    response = client.post('/user/update', data={'nickname': 'Alice 2', 'sex': 'W',
                                                  'memo': 'new memo', 'avatar': '/mnt/a.png'},
                           headers=alice.headers)
    assert response.status_code == 200
    profile = client.post('/user/find', data={'id': alice.id}, headers=alice.headers).json['data']
    assert (profile['nickname'], profile['sex'], profile['memo'], profile['avatar']) == (
        'Alice 2', 'W', 'new memo', '/mnt/a.png')


def test_update_refuses_bad_sex(client, auth):
    alice = auth.register()
    response = client.post('/user/update', data={'sex': 'Q'}, headers=alice.headers)
    assert response.status_code == 400 and response.json['field'] == 'sex'


def test_unknown_path_is_json(client):
    response = client.post('/user/nothing')
    assert response.status_code == 404 and response.json['code'] == -1


def test_wrong_method_is_json(client):
    response = client.get('/user/register')
    assert response.status_code == 405 and response.json['code'] == -1


def test_successful_logins_are_not_limited(app, client, auth):
    account = auth.register()
    for _ in range(app.config['LOGIN_ATTEMPTS'] + 3):
        auth.login(account)


def _fail_logins_from(client, address, mobile, times):
    for _ in range(times):
        response = client.post('/user/login', data={'mobile': mobile, 'passwd': 'wrong-pass'},
                               headers={'X-Forwarded-For': address})
        assert response.status_code == 401


def test_failed_logins_are_limited_per_client_address_behind_a_proxy(app_config, auth):
    from imchat import create_app

    proxied = create_app(dict(app_config, PROXY_COUNT=1))
    try:
        client = proxied.test_client()
        limit = proxied.config['LOGIN_ATTEMPTS']
        victims = [Auth(client).register() for _ in range(limit)]
        # One address guessing at many accounts, one wrong password each.
        for victim in victims:
            _fail_logins_from(client, '203.0.113.7', victim.mobile, 1)
        blocked = client.post('/user/login', headers={'X-Forwarded-For': '203.0.113.7'},
                              data={'mobile': victims[0].mobile, 'passwd': victims[0].passwd})
        assert blocked.status_code == 429
        # Someone else behind the same proxy is not.
        fine = client.post('/user/login', headers={'X-Forwarded-For': '198.51.100.2'},
                           data={'mobile': victims[0].mobile, 'passwd': victims[0].passwd})
        assert fine.status_code == 200
    finally:
        proxied.extensions['imchat'].close()


def test_forwarded_for_is_ignored_without_a_trusted_proxy(app, client, auth):
    limit = app.config['LOGIN_ATTEMPTS']
    victims = [auth.register() for _ in range(limit)]
    for i, victim in enumerate(victims):
        # A direct client cannot dodge the limit by inventing addresses.
        _fail_logins_from(client, '192.0.2.%d' % i, victim.mobile, 1)
    response = client.post('/user/login', headers={'X-Forwarded-For': '192.0.2.200'},
                           data={'mobile': victims[0].mobile, 'passwd': victims[0].passwd})
    assert response.status_code == 429


def test_a_mobile_with_and_without_a_plus_is_one_account(client, auth):
    """`+13912340000` and `13912340000` are one number: registering it twice is refused,
    and either form logs in and finds the one account."""
    account = auth.register(mobile='+13912340000')
    assert account.mobile == '13912340000'
    response = client.post('/user/register', data={'mobile': '13912340000',
                                                   'passwd': 'other-pass'})
    assert response.status_code == 409 and response.json['reason'] == \
        'conflict.mobile_registered'
    for mobile in ('13912340000', '+13912340000'):
        response = client.post('/user/login', data={'mobile': mobile,
                                                    'passwd': account.passwd})
        assert response.status_code == 200 and response.json['data']['id'] == account.id
    friend = auth.register()
    response = client.post('/contact/addfriend', data={'mobile': '+13912340000'},
                           headers=friend.headers)
    assert response.status_code == 200, response.json


# --- the login cookie, for the original client (which sends no token over HTTP) ---------

def test_login_sets_an_httponly_strict_cookie_that_authenticates(app, auth):
    client = app.test_client()
    account = auth.register()
    response = client.post('/user/login', data={'mobile': account.mobile,
                                                'passwd': account.passwd})
    cookie = response.headers['Set-Cookie']
    assert cookie.startswith('imchat_token=' + response.json['data']['token'])
    for part in ('HttpOnly', 'SameSite=Strict', 'Path=/', 'Max-Age={}'.format(
            app.config['TOKEN_TTL'])):
        assert part in cookie, cookie
    assert 'Secure' not in cookie  # plain HTTP here; set over HTTPS
    # A call with the cookie alone, as the original client makes them (only `userid`).
    response = client.post('/contact/loadfriend', data={'userid': account.id},
                           headers={'Origin': 'http://localhost'})
    assert response.status_code == 200, response.json
    assert client.get('/user/find').json['data']['id'] == account.id


def test_the_cookie_is_secure_over_https(app, auth):
    client = app.test_client()
    account = auth.register()
    response = client.post('/user/login', base_url='https://localhost',
                           data={'mobile': account.mobile, 'passwd': account.passwd})
    assert 'Secure' in response.headers['Set-Cookie']


@pytest.mark.parametrize('headers', [{}, {'Origin': 'https://evil.example'},
                                     {'Referer': 'https://evil.example/page'},
                                     {'Origin': 'null'}])
def test_a_cross_site_call_with_the_cookie_alone_is_refused(app, auth, headers):
    client = app.test_client()
    account = auth.register()
    client.post('/user/login', data={'mobile': account.mobile, 'passwd': account.passwd})
    response = client.post('/user/update', data={'nickname': 'hijacked'}, headers=headers)
    assert response.status_code == 403 and response.json['reason'] == 'auth.cross_site'
    same_site = client.post('/user/update', data={'nickname': 'mine'},
                            headers={'Referer': 'http://localhost/chat/index.shtml'})
    assert same_site.status_code == 200 and same_site.json['data']['nickname'] == 'mine'


def test_logout_and_password_change_clear_the_cookie(app, auth):
    client = app.test_client()
    account = auth.register()
    client.post('/user/login', data={'mobile': account.mobile, 'passwd': account.passwd})
    here = {'Origin': 'http://localhost'}
    response = client.post('/user/password', headers=here,
                           data={'passwd': account.passwd, 'newpasswd': 'another-pass'})
    assert response.status_code == 200
    assert 'imchat_token=;' in response.headers['Set-Cookie']
    assert client.get('/user/find').status_code == 401
    client.post('/user/login', data={'mobile': account.mobile, 'passwd': 'another-pass'})
    response = client.post('/user/logout', headers=here)
    assert response.status_code == 200 and 'imchat_token=;' in response.headers['Set-Cookie']
    assert client.get('/user/find').json['reason'] == 'auth.token_missing'


def test_a_token_sent_wins_over_the_cookie(app, auth):
    client = app.test_client()
    alice, bob = auth.register(), auth.register()
    client.post('/user/login', data={'mobile': alice.mobile, 'passwd': alice.passwd})
    response = client.post('/user/find', headers=bob.headers)
    assert response.json['data']['id'] == bob.id


def test_error_status_200_answers_refusals_with_200_and_code_minus_1(app_config):
    from imchat import create_app

    app_config['ERROR_STATUS'] = 200
    app = create_app(app_config)
    try:
        client = app.test_client()
        response = client.post('/user/login', data={'mobile': '13900000000',
                                                    'passwd': 'wrong-pass'})
        assert response.status_code == 200
        assert response.json['code'] == -1 and response.json['reason'] == 'auth.wrong_password'
        assert client.get('/no/such/call').status_code == 200
    finally:
        app.extensions['imchat'].close()


def test_error_status_takes_only_0_or_200():
    from imchat.config import load_config

    with pytest.raises(ValueError, match='IMCHAT_ERROR_STATUS'):
        load_config(environ={'IMCHAT_ERROR_STATUS': '404'})
