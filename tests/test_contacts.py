def test_add_friend_both_directions(client, auth):
    alice, bob = auth.register(nickname='alice'), auth.register(nickname='bob')
    response = client.post('/contact/addfriend', data={'dstid': bob.id}, headers=alice.headers)
    assert response.status_code == 200 and response.json == {'code': 0, 'msg': '', 'data': None}
    alice_friends = client.post('/contact/loadfriend', headers=alice.headers).json
    bob_friends = client.post('/contact/loadfriend', headers=bob.headers).json
    assert [f['id'] for f in alice_friends['rows']] == [bob.id] and alice_friends['total'] == 1
    assert [f['id'] for f in bob_friends['rows']] == [alice.id]


def test_friends_are_public_profiles(client, auth):
    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    friend = client.post('/contact/loadfriend', headers=alice.headers).json['rows'][0]
    assert set(friend) == {'id', 'nickname', 'avatar', 'sex', 'memo', 'online'}


def test_add_friend_by_mobile(client, auth):
    alice, bob = auth.register(), auth.register()
    response = client.post('/contact/addfriend', data={'mobile': bob.mobile}, headers=alice.headers)
    assert response.status_code == 200
    rows = client.post('/contact/loadfriend', headers=alice.headers).json['rows']
    assert [f['id'] for f in rows] == [bob.id]


def test_add_friend_by_unknown_mobile(client, auth):
    alice = auth.register()
    response = client.post('/contact/addfriend', data={'mobile': '19999999999'},
                           headers=alice.headers)
    assert response.status_code == 404 and response.json['field'] == 'mobile'


def test_cannot_add_self(client, auth):
    alice = auth.register()
    response = client.post('/contact/addfriend', data={'dstid': alice.id}, headers=alice.headers)
    assert response.status_code == 400 and response.json['code'] == -1


def test_cannot_add_unknown_user(client, auth):
    alice = auth.register()
    response = client.post('/contact/addfriend', data={'dstid': 424242}, headers=alice.headers)
    assert response.status_code == 404


def test_duplicate_friend(client, auth):
    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    for a, b in ((alice, bob), (bob, alice)):
        response = client.post('/contact/addfriend', data={'dstid': b.id}, headers=a.headers)
        assert response.status_code == 409 and 'already' in response.json['msg']


def test_add_friend_needs_a_target(client, auth):
    alice = auth.register()
    response = client.post('/contact/addfriend', headers=alice.headers)
    assert response.status_code == 400 and response.json['field'] == 'dstid'


def test_add_friend_bad_dstid(client, auth):
    alice = auth.register()
    for bad in ('abc', '-3', '1.5', '99999999999999999999999'):
        response = client.post('/contact/addfriend', data={'dstid': bad}, headers=alice.headers)
        assert response.status_code == 400 and response.json['field'] == 'dstid', bad


def test_create_community_returns_real_id_and_owner_is_member(client, auth):
    alice = auth.register()
    response = client.post('/contact/createcommunity',
                           data={'name': 'Hikers', 'memo': 'weekend walks', 'icon': '/asset/x.png'},
                           headers=alice.headers)
    assert response.status_code == 200
    community = response.json['data']
    assert community['id'] > 0 and community['name'] == 'Hikers'
    assert community['ownerid'] == alice.id
    mine = client.post('/contact/loadcommunity', headers=alice.headers).json['rows']
    assert [c['id'] for c in mine] == [community['id']]
    members = client.post('/contact/members', data={'dstid': community['id']},
                          headers=alice.headers).json['rows']
    assert [m['id'] for m in members] == [alice.id]


def test_community_name_required_and_limited(client, auth):
    alice = auth.register()
    for fields in ({}, {'name': '   '}, {'name': 'n' * 31}):
        response = client.post('/contact/createcommunity', data=fields, headers=alice.headers)
        assert response.status_code == 400 and response.json['field'] == 'name'


def test_sixth_community_is_refused(client, auth):
    alice = auth.register()
    for i in range(5):
        auth.create_community(alice, 'group %d' % i)
    response = client.post('/contact/createcommunity', data={'name': 'sixth'},
                           headers=alice.headers)
    assert response.status_code == 409 and response.json['code'] == -1
    assert len(client.post('/contact/loadcommunity', headers=alice.headers).json['rows']) == 5


def test_join_community(client, auth):
    alice, bob = auth.register(), auth.register()
    community = auth.create_community(alice)
    response = client.post('/contact/joincommunity', data={'dstid': community['id']},
                           headers=bob.headers)
    assert response.status_code == 200 and response.json['code'] == 0
    assert [c['id'] for c in client.post('/contact/loadcommunity',
                                         headers=bob.headers).json['rows']] == [community['id']]
    members = client.post('/contact/members', data={'dstid': community['id']},
                          headers=bob.headers).json['rows']
    assert sorted(m['id'] for m in members) == sorted([alice.id, bob.id])


def test_joining_twice_is_harmless(client, auth):
    alice, bob = auth.register(), auth.register()
    community = auth.create_community(alice)
    auth.join(bob, community['id'])
    auth.join(bob, community['id'])
    members = client.post('/contact/members', data={'dstid': community['id']},
                          headers=bob.headers).json
    assert members['total'] == 2


def test_join_unknown_community(client, auth):
    alice = auth.register()
    response = client.post('/contact/joincommunity', data={'dstid': 777}, headers=alice.headers)
    assert response.status_code == 404 and response.json['code'] == -1


def test_join_needs_dstid(client, auth):
    alice = auth.register()
    response = client.post('/contact/joincommunity', headers=alice.headers)
    assert response.status_code == 400 and response.json['field'] == 'dstid'


def test_members_only_for_members(client, auth):
    alice, mallory = auth.register(), auth.register()
    community = auth.create_community(alice)
    response = client.post('/contact/members', data={'dstid': community['id']},
                           headers=mallory.headers)
    assert response.status_code == 403


def test_members_of_unknown_community(client, auth):
    alice = auth.register()
    response = client.post('/contact/members', data={'dstid': 5555}, headers=alice.headers)
    assert response.status_code == 404


def test_load_community_lists_only_mine(client, auth):
    alice, bob = auth.register(), auth.register()
    auth.create_community(alice, 'alice group')
    theirs = auth.create_community(bob, 'bob group')
    rows = client.post('/contact/loadcommunity', headers=alice.headers).json['rows']
    assert theirs['id'] not in [c['id'] for c in rows] and len(rows) == 1
