"""Every error reply carries a stable machine `reason` beside its `msg`, so a client can
show its own words in the person's language (docs/protocol.md, "Error reasons")."""


def _refused(response, status, reason, field=None):
    body = response.json
    assert response.status_code == status, body
    assert body['code'] == -1 and body['msg'], body
    assert body['reason'] == reason, body
    if field is not None:
        assert body['field'] == field, body


def test_account_errors_name_their_reason(client, auth):
    alice = auth.register()
    _refused(client.post('/user/register', data={'mobile': alice.mobile, 'passwd': 'whatever-1'}),
             409, 'conflict.mobile_registered', 'mobile')
    _refused(client.post('/user/login', data={'mobile': alice.mobile, 'passwd': 'wrong-pass'}),
             401, 'auth.wrong_password')
    _refused(client.post('/user/find', data={'id': alice.id}), 401, 'auth.token_missing')
    _refused(client.post('/user/find', data={'id': alice.id},
                         headers={'Authorization': 'Bearer not-a-token'}),
             401, 'auth.token_invalid')
    _refused(client.post('/user/find', data={'id': 10 ** 9}, headers=alice.headers),
             404, 'not_found.user')
    _refused(client.post('/user/find', data={'userid': alice.id + 1}, headers=alice.headers),
             403, 'auth.not_you')


def test_contact_errors_name_their_reason(client, auth):
    alice, bob = auth.register(), auth.register()
    _refused(client.post('/contact/addfriend', data={'mobile': '13012345678'},
                         headers=alice.headers), 404, 'not_found.user', 'mobile')
    _refused(client.post('/contact/addfriend', data={'dstid': alice.id}, headers=alice.headers),
             400, 'contact.self', 'dstid')
    _refused(client.post('/contact/delfriend', data={'dstid': bob.id}, headers=alice.headers),
             404, 'contact.not_friends', 'dstid')
    community = auth.create_community(alice)
    carol = auth.register()
    auth.join(carol, community['id'])
    _refused(client.post('/contact/quitcommunity', data={'dstid': community['id']},
                         headers=alice.headers), 409, 'community.owner_must_transfer', 'dstid')
    _refused(client.post('/contact/members', data={'dstid': community['id']},
                         headers=bob.headers), 403, 'community.not_member')
    _refused(client.post('/contact/joincommunity', data={'dstid': 10 ** 9},
                         headers=bob.headers), 404, 'not_found.community', 'dstid')


def test_bad_fields_and_routes_name_their_reason(client, auth):
    alice = auth.register()
    _refused(client.post('/contact/addfriend', data={'dstid': 'abc'}, headers=alice.headers),
             400, 'invalid', 'dstid')
    _refused(client.get('/no/such/call'), 404, 'not_found.route')
    _refused(client.get('/chat'), 400, 'websocket_only')
