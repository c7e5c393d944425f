from flask import Blueprint, g

from imchat.ctrl import bind_request, login_required, ok, ok_rows, services
from imchat.ctrl.user import MOBILE
from imchat.model.entities import AVATAR_MAX, COMMUNITY_NAME_MAX, MEMO_MAX
from imchat.model.safety import JOIN_MODES
from imchat.service.errors import BadRequest
from imchat.util.bind import Field
from imchat.util.urls import url_field

bp = Blueprint('contact', __name__, url_prefix='/contact')

DSTID = Field('dstid', int, required=True, minimum=1)
MEMBERID = Field('memberid', int, required=True, minimum=1)
JOINMODE = Field('joinmode', choices=JOIN_MODES)


@bp.route('/addfriend', methods=['POST'])
@login_required
def add_friend():
    optional_mobile = Field('mobile', pattern=MOBILE.pattern.pattern,
                            pattern_hint=MOBILE.pattern_hint)
    fields = bind_request(Field('dstid', int, minimum=1), optional_mobile,
                          Field('memo', max_len=MEMO_MAX))
    dst_id = fields['dstid']
    if dst_id is None:
        if fields['mobile'] is None:
            raise BadRequest('dstid: give the friend\'s id as dstid, or their mobile',
                             field='dstid')
        dst_id = services().users.find_by_mobile(fields['mobile'])
    requests = services().friend_requests  # issue 22: a request, unless they are off
    status = requests.add(g.user_id, dst_id, fields['memo'] or '')
    return ok({'status': status} if requests.enabled else None)


@bp.route('/loadfriend', methods=['GET', 'POST'])
@login_required
def load_friends():
    friend_ids = services().contacts.friend_ids(g.user_id)
    return ok_rows(services().users.public_profiles(friend_ids, g.user_id))


@bp.route('/createcommunity', methods=['POST'])
@login_required
def create_community():
    fields = bind_request(Field('name', required=True, max_len=COMMUNITY_NAME_MAX),
                          url_field('icon', AVATAR_MAX), Field('memo', max_len=MEMO_MAX),
                          Field('cate', int, minimum=0, maximum=1000), JOINMODE)
    joinmode = fields.pop('joinmode')
    view = services().contacts.create_community(g.user_id, **fields)
    services().roles.start(view['id'], joinmode)  # issue 22: the join rule
    return ok(services().roles.describe(view))


@bp.route('/joincommunity', methods=['POST'])
@login_required
def join_community():
    fields = bind_request(DSTID, Field('memo', max_len=MEMO_MAX))
    status = services().joins.join(g.user_id, fields['dstid'], fields['memo'] or '')
    return ok({'status': status})


@bp.route('/loadcommunity', methods=['GET', 'POST'])
@login_required
def load_communities():
    roles = services().roles
    return ok_rows([roles.describe(c) for c in services().contacts.load_communities(g.user_id)])


@bp.route('/members', methods=['GET', 'POST'])
@login_required
def community_members():
    fields = bind_request(DSTID)
    member_ids = services().contacts.member_ids(g.user_id, fields['dstid'])
    rows = services().users.public_profiles(member_ids, g.user_id)
    # Each member's role (issue 22). Whether they are online shows to friends only, so
    # never to someone they block.
    roles = services().roles.roles_of(fields['dstid'], member_ids)
    muted = services().roles.mutes_of(fields['dstid'])
    for row in rows:
        row['role'] = roles[row['id']]
        row['muteuntil'] = muted.get(row['id'], 0)
    return ok_rows(rows)


@bp.route('/delfriend', methods=['POST'])
@login_required
def delete_friend():
    fields = bind_request(DSTID)
    services().contacts.delete_friend(g.user_id, fields['dstid'])
    return ok()


@bp.route('/quitcommunity', methods=['POST'])
@login_required
def quit_community():
    fields = bind_request(DSTID)
    services().contacts.quit_community(g.user_id, fields['dstid'])
    return ok()


@bp.route('/kick', methods=['POST'])
@login_required
def kick():
    fields = bind_request(DSTID, MEMBERID)
    services().roles.kick(g.user_id, fields['dstid'], fields['memberid'])  # admins too
    return ok()


@bp.route('/transfer', methods=['POST'])
@login_required
def transfer():
    fields = bind_request(DSTID, MEMBERID)
    services().contacts.transfer(g.user_id, fields['dstid'], fields['memberid'])
    services().roles.transferred(g.user_id, fields['dstid'], fields['memberid'])
    return ok()
