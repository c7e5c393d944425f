"""/chat/search (PROTOCOL.md, "Search"; docs/search.md).

Its errors carry a machine `reason` beside `msg` and `field`: `bad_request.<field>`,
`forbidden.dstid`, `not_found.dstid`.
"""
from flask import Blueprint, g

from imchat.ctrl import bind_request, login_required, ok_rows, reply, services
from imchat.service.errors import ServiceError
from imchat.service.search import QUERY_MAX, SEARCH_MAX
from imchat.util import resp
from imchat.util.bind import BindError, Field

bp = Blueprint('search', __name__, url_prefix='/chat')

_KINDS = {400: 'bad_request', 403: 'forbidden', 404: 'not_found'}


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


@bp.errorhandler(BindError)
def bad_field(error):
    return reply(resp.fail(str(error), field=error.field,
                           reason='bad_request.' + error.field), 400)


@bp.errorhandler(ServiceError)
def refused(error):
    reason = getattr(error, 'reason', None) or '{}.{}'.format(
        _KINDS.get(error.status, 'error'), error.field or 'request')
    extra = {'field': error.field} if error.field else {}
    return reply(resp.fail(error.msg, reason=reason, **extra), error.status)
