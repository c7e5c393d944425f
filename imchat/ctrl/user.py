from flask import Blueprint, current_app, g, request

from imchat.ctrl import (bind_request, clear_token_cookie, login_required, ok, services,
                         set_token_cookie)
from imchat.model.entities import AVATAR_MAX, MEMO_MAX, MOBILE_MAX, NICKNAME_MAX, SEXES
from imchat.util.bind import Field
from imchat.util.urls import url_field

bp = Blueprint('user', __name__, url_prefix='/user')

PASSWD_MIN = 6
PASSWD_MAX = 128

# ASCII digits only: MySQL's collations take other scripts' digits (１３９, ١٣٩) as equal
# to 139, which would let look-alike accounts be made and split the login limit.
MOBILE = Field('mobile', required=True, pattern=r'\+?[0-9]{5,%d}' % (MOBILE_MAX - 1),
               pattern_hint='must be 5 to {} digits (0-9), optionally after a +'.format(
                   MOBILE_MAX - 1))
# Passwords are taken as sent, spaces included.
PASSWD = Field('passwd', required=True, min_len=PASSWD_MIN, max_len=PASSWD_MAX, strip=False)
PROFILE = (
    Field('nickname', max_len=NICKNAME_MAX),
    url_field('avatar', AVATAR_MAX),
    Field('sex', choices=SEXES),
    Field('memo', max_len=MEMO_MAX),
)


def _logged_in(profile, token):
    """The reply of a login: the token in the body (for clients that send it) and in
    the login cookie (for the original client, which sends none)."""
    profile['token'] = token
    return set_token_cookie(ok(profile), token, current_app.config['TOKEN_TTL'])


@bp.route('/register', methods=['POST'])
def register():
    fields = bind_request(MOBILE, PASSWD, *PROFILE)
    user, token = services().users.register(**fields, client_addr=request.remote_addr or '')
    return _logged_in(user, token)


@bp.route('/login', methods=['POST'])
def login():
    fields = bind_request(MOBILE, Field('passwd', required=True, max_len=PASSWD_MAX,
                                        strip=False))
    user, token = services().users.login(fields['mobile'], fields['passwd'],
                                         client_addr=request.remote_addr or '')
    return _logged_in(user, token)


@bp.route('/logout', methods=['POST'])
@login_required
def logout():
    services().users.logout(g.token)
    return clear_token_cookie(ok())


@bp.route('/password', methods=['POST'])
@login_required
def change_password():
    fields = bind_request(Field('passwd', required=True, max_len=PASSWD_MAX, strip=False),
                          Field('newpasswd', required=True, min_len=PASSWD_MIN,
                                max_len=PASSWD_MAX, strip=False))
    services().users.change_passwd(g.token, fields['passwd'], fields['newpasswd'],
                                   client_addr=request.remote_addr or '')
    return clear_token_cookie(ok())


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
