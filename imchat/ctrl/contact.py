from flask import Blueprint, g

from imchat.ctrl import bind_request, login_required, ok, ok_rows, services
from imchat.ctrl.user import MOBILE
from imchat.model.entities import AVATAR_MAX, COMMUNITY_NAME_MAX, MEMO_MAX
from imchat.service.errors import BadRequest
from imchat.util.bind import Field
from imchat.util.urls import url_field

bp = Blueprint('contact', __name__, url_prefix='/contact')

DSTID = Field('dstid', int, required=True, minimum=1)
MEMBERID = Field('memberid', int, required=True, minimum=1)


@bp.route('/addfriend', methods=['POST'])
@login_required
def add_friend():
    optional_mobile = Field('mobile', pattern=MOBILE.pattern.pattern,
                            pattern_hint=MOBILE.pattern_hint)
    fields = bind_request(Field('dstid', int, minimum=1), optional_mobile)
    dst_id = fields['dstid']
    if dst_id is None:
        if fields['mobile'] is None:
            raise BadRequest('dstid: give the friend\'s id as dstid, or their mobile',
                             field='dstid')
        dst_id = services().users.find_by_mobile(fields['mobile'])
    services().contacts.add_friend(g.user_id, dst_id)
    return ok()


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
                          Field('cate', int, minimum=0, maximum=1000))
    return ok(services().contacts.create_community(g.user_id, **fields))


@bp.route('/joincommunity', methods=['POST'])
@login_required
def join_community():
    fields = bind_request(DSTID)
    services().contacts.join_community(g.user_id, fields['dstid'])
    return ok()


@bp.route('/loadcommunity', methods=['GET', 'POST'])
@login_required
def load_communities():
    return ok_rows(services().contacts.load_communities(g.user_id))


@bp.route('/members', methods=['GET', 'POST'])
@login_required
def community_members():
    fields = bind_request(DSTID)
    member_ids = services().contacts.member_ids(g.user_id, fields['dstid'])
    return ok_rows(services().users.public_profiles(member_ids, g.user_id))


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
    services().contacts.kick(g.user_id, fields['dstid'], fields['memberid'])
    return ok()


@bp.route('/transfer', methods=['POST'])
@login_required
def transfer():
    fields = bind_request(DSTID, MEMBERID)
    services().contacts.transfer(g.user_id, fields['dstid'], fields['memberid'])
    return ok()
