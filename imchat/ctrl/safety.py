"""Issue 22's calls: friend requests, blocks, conversation mutes, community roles and
rules, invitations, approvals, reports (docs/protocol.md, "Contacts and safety")."""
from flask import Blueprint, g

from imchat.ctrl import bind_request, login_required, ok, ok_rows, services
from imchat.model.entities import AVATAR_MAX, COMMUNITY_NAME_MAX, MEMO_MAX
from imchat.model.safety import JOIN_MODES, REPORT_REASONS, ROLE_ADMIN, ROLE_MEMBER
from imchat.util.bind import Field
from imchat.util.urls import url_field

bp = Blueprint('safety', __name__)

DSTID = Field('dstid', int, required=True, minimum=1)
MEMBERID = Field('memberid', int, required=True, minimum=1)
UNTIL = Field('until', int, required=True, minimum=-1)


@bp.route('/contact/requests', methods=['GET', 'POST'])
@login_required
def friend_requests():
    return ok_rows(services().friend_requests.pending(g.user_id))


@bp.route('/contact/accept', methods=['POST'])
@login_required
def accept():
    services().friend_requests.accept(g.user_id, bind_request(DSTID)['dstid'])
    return ok()


@bp.route('/contact/decline', methods=['POST'])
@login_required
def decline():
    services().friend_requests.decline(g.user_id, bind_request(DSTID)['dstid'])
    return ok()


@bp.route('/contact/block', methods=['POST'])
@login_required
def block():
    services().blocks.block(g.user_id, bind_request(DSTID)['dstid'])
    return ok()


@bp.route('/contact/unblock', methods=['POST'])
@login_required
def unblock():
    services().blocks.unblock(g.user_id, bind_request(DSTID)['dstid'])
    return ok()


@bp.route('/contact/blocked', methods=['GET', 'POST'])
@login_required
def blocked():
    ids = services().blocks.blocked_ids(g.user_id)
    return ok_rows(services().users.public_profiles(ids, g.user_id))


@bp.route('/chat/mute', methods=['POST'])
@login_required
def mute_conversation():
    fields = bind_request(Field('target', int, required=True), DSTID, UNTIL)
    services().mutes.mute(g.user_id, fields['target'], fields['dstid'], fields['until'])
    return ok()


@bp.route('/contact/community', methods=['GET', 'POST'])
@login_required
def community_profile():
    """The public profile of a community, for anyone: name, icon, memo, member count."""
    return ok(services().roles.public_profile(bind_request(DSTID)['dstid']))


@bp.route('/contact/updatecommunity', methods=['POST'])
@login_required
def update_community():
    fields = bind_request(DSTID, Field('name', max_len=COMMUNITY_NAME_MAX),
                          url_field('icon', AVATAR_MAX), Field('memo', max_len=MEMO_MAX),
                          Field('joinmode', choices=JOIN_MODES),
                          Field('announce', int, minimum=0, maximum=1))
    community_id = fields.pop('dstid')
    return ok(services().roles.update(g.user_id, community_id, **fields))


@bp.route('/contact/invite', methods=['POST'])
@login_required
def invite():
    fields = bind_request(DSTID, MEMBERID)
    services().joins.invite(g.user_id, fields['dstid'], fields['memberid'])
    return ok()


@bp.route('/contact/invitations', methods=['GET', 'POST'])
@login_required
def invitations():
    return ok_rows(services().joins.invitations(g.user_id))


@bp.route('/contact/declineinvite', methods=['POST'])
@login_required
def decline_invitation():
    services().joins.decline_invitation(g.user_id, bind_request(DSTID)['dstid'])
    return ok()


@bp.route('/contact/joinrequests', methods=['GET', 'POST'])
@login_required
def join_requests():
    return ok_rows(services().joins.pending(g.user_id, bind_request(DSTID)['dstid']))


@bp.route('/contact/approve', methods=['POST'])
@login_required
def approve():
    fields = bind_request(DSTID, MEMBERID)
    services().joins.decide(g.user_id, fields['dstid'], fields['memberid'], approve=True)
    return ok()


@bp.route('/contact/reject', methods=['POST'])
@login_required
def reject():
    fields = bind_request(DSTID, MEMBERID)
    services().joins.decide(g.user_id, fields['dstid'], fields['memberid'], approve=False)
    return ok()


@bp.route('/contact/setrole', methods=['POST'])
@login_required
def set_role():
    fields = bind_request(DSTID, MEMBERID,
                          Field('role', required=True, choices=(ROLE_ADMIN, ROLE_MEMBER)))
    services().roles.set_role(g.user_id, fields['dstid'], fields['memberid'], fields['role'])
    return ok()


@bp.route('/contact/mutemember', methods=['POST'])
@login_required
def mute_member():
    fields = bind_request(DSTID, MEMBERID, UNTIL)
    services().roles.mute_member(g.user_id, fields['dstid'], fields['memberid'],
                                 fields['until'])
    return ok()


@bp.route('/report', methods=['POST'])
@login_required
def report():
    # The reported user is `dstid`: a `userid` naming anyone but the caller is refused
    # by login_required (auth.not_you), as on every call.
    fields = bind_request(Field('dstid', int, minimum=1), Field('msgid', int, minimum=1),
                          Field('reason', required=True, choices=REPORT_REASONS),
                          Field('memo', max_len=500))
    services().reports.report(g.user_id, fields['reason'], user_id=fields['dstid'],
                              msgid=fields['msgid'], memo=fields['memo'] or '')
    return ok()
