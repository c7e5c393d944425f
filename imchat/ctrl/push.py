"""Web Push calls (/push/key, /push/subscribe, /push/unsubscribe; docs/push.md) and
the installable client's root-scope files: the service worker at /sw.js (its scope
is the whole site) and the web app manifest."""
import json

from flask import Blueprint, current_app, g, send_from_directory

from imchat.ctrl import bind_request, login_required, ok, reply, request_fields, services
from imchat.util import resp
from imchat.service.errors import BadRequest
from imchat.util.bind import Field
from imchat.util.token import token_key

bp = Blueprint('push', __name__)

SUBSCRIPTION_MAX_CHARS = 2000


@bp.route('/push/key', methods=['GET', 'POST'])
def key():
    public = services().push.public_key()
    if public is None:
        return reply(resp.ok(None, msg='push notifications are off on this server'))
    return ok({'key': public})


@bp.route('/push/subscribe', methods=['POST'])
@login_required
def subscribe():
    raw = request_fields().get('subscription')
    if isinstance(raw, str):
        try:
            if len(raw) > SUBSCRIPTION_MAX_CHARS:
                raise ValueError
            raw = json.loads(raw)
        except ValueError:
            raise BadRequest('subscription: must be a PushSubscription as JSON, at most {} '
                             'characters'.format(SUBSCRIPTION_MAX_CHARS),
                             field='subscription', reason='push.bad_subscription')
    if raw is None:
        raise BadRequest('subscription: is required', field='subscription',
                         reason='push.bad_subscription')
    svc = services()
    user_id, expires_at = svc.users.session(g.token)
    svc.push.subscribe(user_id, token_key(g.token), expires_at, raw)
    return ok()


@bp.route('/push/unsubscribe', methods=['POST'])
@login_required
def unsubscribe():
    fields = bind_request(Field('endpoint', max_len=1000))
    services().push.unsubscribe(g.user_id, token_key(g.token), fields['endpoint'])
    return ok()


def _asset(name, mimetype):
    response = send_from_directory(current_app.static_folder, name, mimetype=mimetype,
                                   max_age=0)
    response.headers['Cache-Control'] = 'no-cache'
    return response


@bp.route('/sw.js', methods=['GET'])
def service_worker():
    response = _asset('sw.js', 'text/javascript')
    # Served from the root, so its scope is the whole site.
    response.headers['Service-Worker-Allowed'] = '/'
    return response


@bp.route('/manifest.webmanifest', methods=['GET'])
def manifest():
    return _asset('manifest.webmanifest', 'application/manifest+json')
