"""Flask blueprints: parse and check input, call a service, shape the reply.

A login's token reaches a call in an `Authorization: Bearer` header (this project's
client), a `token` field or query parameter, or the `imchat_token` cookie that login and
registration set (the original client, which sends no token over HTTP at all). A cookie
rides along on its own, so a call that changes state and is authenticated by the cookie
alone must come from this site: SameSite=Strict keeps browsers from sending it on
another site's requests, and the Origin (or Referer) of such a call must name this host,
which a page on another site cannot forge; a call that names neither is refused.
"""
import functools
import logging

from urllib.parse import urlsplit

from flask import current_app, g, jsonify, request
from pony.orm import rollback
from werkzeug.exceptions import HTTPException

from imchat.service.availability import pool_exhausted, unavailable_cause
from imchat.service.errors import Forbidden, ServiceError
from imchat.util import resp
from imchat.util.bind import BindError, bind
from imchat.util.jsonsafe import has_surrogate, nesting_exceeds

log = logging.getLogger('imchat')


def services():
    return current_app.extensions['imchat']


# The cookie a browser keeps the login's token in (see the module docstring).
TOKEN_COOKIE = 'imchat_token'
# Methods that only read: a cookie-authenticated call of these needs no origin check.
SAFE_METHODS = frozenset(('GET', 'HEAD', 'OPTIONS'))


def reply(body, status=200):
    response = jsonify(body)
    response.status_code = status
    return response


def refusal(body, status):
    """An error reply: its real status, or 200 where IMCHAT_ERROR_STATUS=200 (the
    original client reads only 200 replies, and `code: -1` says it was refused)."""
    if current_app.config.get('ERROR_STATUS') == 200:
        status = 200
    return reply(body, status)


def set_token_cookie(response, token, ttl):
    """Keep the login's token in an HttpOnly cookie for clients that send none."""
    response.set_cookie(TOKEN_COOKIE, token, max_age=ttl, path='/', httponly=True,
                        samesite='Strict', secure=request.is_secure)
    return response


def clear_token_cookie(response):
    response.delete_cookie(TOKEN_COOKIE, path='/', httponly=True, samesite='Strict',
                           secure=request.is_secure)
    return response


def ok(data=None):
    return reply(resp.ok(data))


def ok_rows(items):
    return reply(resp.rows(items))


def request_fields():
    """Every field of the request in one mapping: query string, form or multipart
    body, and a JSON object body. Later sources win."""
    fields = {}
    fields.update(request.args.to_dict())
    fields.update(request.form.to_dict())
    if request.is_json:
        body = json_body()
        if body is not None and not isinstance(body, dict):
            raise BindError('body', 'must be a JSON object')
        fields.update(body or {})
    return fields


def json_body():
    """The decoded JSON body, or None when there is none; raises BindError('body') for
    one that is not JSON, or nests deeper than any call needs (a recursive decoder
    would exhaust its stack on it)."""
    data = request.get_data(cache=True)
    if not data:
        return None
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        raise BindError('body', 'is not valid UTF-8')
    if nesting_exceeds(text):
        raise BindError('body', 'is nested too deeply')
    body = request.get_json(silent=True)
    if body is None:
        raise BindError('body', 'is not valid JSON')
    return body


def bind_request(*fields):
    return bind(fields, request_fields())


def token_outside_body():
    """The token of the `Authorization` header or the query string, read without
    touching the body; None when neither has one."""
    header = request.headers.get('Authorization', '')
    if header[:7].lower() == 'bearer ':
        return header[7:].strip()
    token = request.args.get('token')
    if token and has_surrogate(token):
        return None  # no token has one, and it could not be hashed
    return token or None


def request_token():
    token = token_outside_body()
    if token is not None:
        return token
    token = request.form.get('token')
    if not token and request.is_json:
        try:
            body = json_body()
        except BindError:
            body = None  # the call itself reports the body
        if isinstance(body, dict) and isinstance(body.get('token'), str):
            token = body['token']
    if token and has_surrogate(token):
        return None  # no token has one, and it could not be hashed
    return token or cookie_token()


def cookie_token():
    """The token of the login cookie, after checking that a call changing state comes
    from this site (the module docstring says why that suffices). Raises Forbidden."""
    token = request.cookies.get(TOKEN_COOKIE)
    if not token or has_surrogate(token):
        return None
    # A WebSocket handshake is a GET, but opens a session that sends: checked too.
    changes_state = (request.method not in SAFE_METHODS
                     or request.headers.get('Upgrade', '').lower() == 'websocket')
    if changes_state and not _from_this_site():
        raise Forbidden('a call authenticated by the login cookie must come from this site',
                        reason='auth.cross_site')
    return token


def _from_this_site():
    source = request.headers.get('Origin') or request.headers.get('Referer')
    if not source or source == 'null':
        return False
    return urlsplit(source).netloc.lower() == request.host.lower()


def login_required(view):
    """Resolve the token to `g.user_id`; a `userid`/`ownerid` naming anyone else is 403."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        authenticate(request_token())
        return view(*args, **kwargs)
    return wrapped


def authenticate(token):
    """Set `g.token` and `g.user_id` for `token`, and refuse a `userid`/`ownerid` field
    naming anyone else (403). Raises Unauthorized for a missing or bad token."""
    g.token = token
    g.user_id = services().users.authenticate(token)
    fields = request_fields()
    for name in ('userid', 'ownerid'):
        claimed = fields.get(name)
        if claimed in (None, ''):
            continue
        if str(claimed).strip() != str(g.user_id):
            # Quoted safely: it may be anything, a lone surrogate included.
            shown = str(claimed)[:40].encode('utf-8', 'backslashreplace').decode()
            raise Forbidden('{} {} is not you: a request may only act as its '
                            "token's user".format(name, shown), reason='auth.not_you')


def register_error_handlers(app):
    @app.errorhandler(ServiceError)
    def service_error(error):
        extra = {'field': error.field} if error.field else {}
        return refusal(resp.fail(error.msg, error.reason, **extra), error.status)

    @app.errorhandler(BindError)
    def bind_error(error):
        return refusal(resp.fail(str(error), error.reason, field=error.field), 400)

    @app.errorhandler(HTTPException)
    def http_error(error):
        messages = {404: ('no such page or API call', 'not_found.route'),
                    405: ('this call does not accept the {} method'.format(request.method),
                          'method_not_allowed'),
                    413: ('the request is too large', 'too_large')}
        msg, reason = messages.get(error.code, (error.description or error.name, 'http'))
        return refusal(resp.fail(msg, reason), error.code or 500)

    @app.errorhandler(Exception)
    def unexpected_error(error):
        try:
            rollback()
        except Exception:
            pass
        cause = unavailable_cause(error)
        if cause is not None:
            # Logged once per outage (imchat.service.availability), not per request.
            services().db_watch.refuse(cause)
            return refusal(resp.fail('the database is unavailable, please try again shortly',
                                     'unavailable.database'),
                         503)
        if pool_exhausted(error):
            log.warning('%s %s: %s', request.method, request.path, error)
            return refusal(resp.fail('the server is busy, please try again shortly', 'busy'),
                           503)
        log.exception('unhandled error on %s %s', request.method, request.path)
        return refusal(resp.fail('internal error, please try again later', 'internal'), 500)
