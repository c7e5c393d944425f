from flask import Blueprint, g, request

from imchat.ctrl import bind_request, login_required, ok, services
from imchat.model import AVATAR_MAX, MEMO_MAX, MOBILE_MAX, NICKNAME_MAX, SEXES
from imchat.util.bind import Field

bp = Blueprint('user', __name__, url_prefix='/user')

PASSWD_MIN = 6
PASSWD_MAX = 128

MOBILE = Field('mobile', required=True, pattern=r'\+?\d{5,%d}' % (MOBILE_MAX - 1),
               pattern_hint='must be 5 to {} digits, optionally after a +'.format(MOBILE_MAX - 1))
PASSWD = Field('passwd', required=True, min_len=PASSWD_MIN, max_len=PASSWD_MAX)
PROFILE = (
    Field('nickname', max_len=NICKNAME_MAX),
    Field('avatar', max_len=AVATAR_MAX),
    Field('sex', choices=SEXES),
    Field('memo', max_len=MEMO_MAX),
)


def _with_token(profile, token):
    profile['token'] = token
    return profile


@bp.route('/register', methods=['POST'])
def register():
    fields = bind_request(MOBILE, PASSWD, *PROFILE)
    user, token = services().users.register(**fields)
    return ok(_with_token(user, token))


@bp.route('/login', methods=['POST'])
def login():
    fields = bind_request(MOBILE, Field('passwd', required=True, max_len=PASSWD_MAX))
    user, token = services().users.login(fields['mobile'], fields['passwd'],
                                         client_addr=request.remote_addr or '')
    return ok(_with_token(user, token))


@bp.route('/logout', methods=['POST'])
@login_required
def logout():
    services().users.logout(g.token)
    return ok()


@bp.route('/find', methods=['GET', 'POST'])
@login_required
def find():
    fields = bind_request(Field('id', int, minimum=1))
    return ok(services().users.find(fields['id'] or g.user_id, g.user_id))


@bp.route('/update', methods=['POST'])
@login_required
def update():
    fields = bind_request(*PROFILE)
    return ok(services().users.update_profile(g.user_id, fields))
