"""/chat/search (PROTOCOL.md, "Search"; docs/search.md).

Its errors leave through the app's handlers, with the reasons of docs/protocol.md:
`invalid` (with the `field`), `community.not_member`, `not_found.user`,
`not_found.community`.
"""
from flask import Blueprint, g

from imchat.ctrl import bind_request, login_required, ok_rows, services
from imchat.service.search import QUERY_MAX, SEARCH_MAX
from imchat.util.bind import Field

bp = Blueprint('search', __name__, url_prefix='/chat')


@bp.route('/search', methods=['GET', 'POST'])
@login_required
def search():
    fields = bind_request(Field('q', str, max_len=QUERY_MAX),
                          Field('target', int),
                          Field('dstid', int, minimum=1),
                          Field('before', int, minimum=1),
                          Field('limit', int, minimum=1, maximum=SEARCH_MAX))
    return ok_rows(services().search.search(g.user_id, fields['q'], fields['target'],
                                            fields['dstid'], fields['before'],
                                            fields['limit']))

