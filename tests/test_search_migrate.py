"""Migration 0005 (issue 20): a database with messages stored before search existed gets
them indexed by the follower, in the background, after the server has started."""
import pytest

from tests.test_migrate import (export_release, fill_with_the_old_release, OldServer, post,
                                start_today, stop_today)

# The last commit before the search index: its databases have messages and no index.
BEFORE_SEARCH = 'ca836f7'


@pytest.mark.process  # the previous release, exported with git and run on its own
def test_messages_stored_before_the_index_existed_are_found(database_url, tmp_path):
    code_dir = tmp_path / 'previous'
    code_dir.mkdir()
    export_release(BEFORE_SEARCH, code_dir)
    old = OldServer(str(code_dir), database_url, tmp_path)
    try:
        users, community, sent = fill_with_the_old_release(old)
    finally:
        old.stop()
    a, b, c = users

    app, server = start_today(database_url, tmp_path)
    try:
        svc = app.extensions['imchat']
        assert '0005_20-search-index' in svc.applied_migrations
        # Filled from position 0 by the follower, which started with the server.
        assert svc.search_index.catch_up() == max(msgid for _, _, msgid in sent)
        base = server.url
        status, answer = post(base, '/chat/search', b['token'], q='hello')
        assert status == 200, answer
        assert [row['content'] for row in answer['rows']] == ['group hello',
                                                              'hello 👋 from the past']
        status, answer = post(base, '/chat/search', c['token'], q='hello')
        assert [row['content'] for row in answer['rows']] == ['group hello']
        status, answer = post(base, '/chat/search', a['token'], q='reply', target=11,
                              dstid=community['id'])
        assert [row['userid'] for row in answer['rows']] == [b['id']]
    finally:
        stop_today(app, server)
