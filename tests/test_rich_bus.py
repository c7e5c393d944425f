"""Edits and reactions across two nodes on Redis (docs/protocol.md, "Richer messages"):
the events are rows of the message stream, so the bus carries them like messages, to
every member's connection on every node, in id order; SQLite and MariaDB."""
from test_bus import befriend, cluster, connect, people, texts  # noqa: F401 (fixture)


def ack_of(client, **frame):
    client.send(**frame)
    while True:
        got = client.recv(10)
        if got.get('cmd') == 1:
            return got


def test_edits_replies_and_reactions_reach_the_other_node(cluster):
    # Friends at once and open communities, as before issue 22 (the nodes do not read
    # conftest's environment).
    nodes = cluster('redis', 2, FRIEND_REQUESTS=0, DEFAULT_JOINMODE='open', JOINS_PER_HOUR=0)
    alice, bob, carol = people(nodes[0], 3)
    befriend(nodes[0], alice, bob)
    status, reply = nodes[0].api.post('/contact/createcommunity', {'name': 'g'}, alice)
    community = reply['data']['id']
    for member in (bob, carol):
        assert nodes[1].api.post('/contact/joincommunity', {'dstid': community}, member)[0] == 200
    a0, b1, c1 = connect(nodes[0], alice), connect(nodes[1], bob), connect(nodes[1], carol)
    try:
        ack = ack_of(a0, cmd=11, dstid=community, media=1, content='tyop')
        msgid = ack['msgid']
        for client in (b1, c1):
            assert texts(client, 1)[0]['msgid'] == msgid
        edit = ack_of(a0, cmd=18, msgid=msgid, content='typo')
        for client in (b1, c1):
            got = texts(client, 1)[0]
            assert (got['cmd'], got['msgid'], got['editedmsgid'], got['content']) == (
                18, edit['msgid'], msgid, 'typo')
        reaction = ack_of(b1, cmd=19, msgid=msgid, emoji='👍', on=1)
        for client in (a0, c1):
            got = texts(client, 1)[0]
            assert (got['cmd'], got['msgid'], got['userid'], got['emoji']) == (
                19, reaction['msgid'], bob['id'], '👍')
        answer = ack_of(c1, cmd=11, dstid=community, media=1, content='ok', replyto=msgid)
        got = texts(a0, 1)[0]
        assert got['msgid'] == answer['msgid'] and got['reply']['content'] == 'typo'
    finally:
        for client in (a0, b1, c1):
            client.close()
