"""Flask blueprints: parse and check input, call a service, shape the reply."""
import functools
import logging

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


def reply(body, status=200):
    response = jsonify(body)
    response.status_code = status
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


def request_token():
    header = request.headers.get('Authorization', '')
    if header[:7].lower() == 'bearer ':
        return header[7:].strip()
    token = request.args.get('token') or request.form.get('token')
    if not token and request.is_json:
        try:
            body = json_body()
        except BindError:
            body = None  # the call itself reports the body
        if isinstance(body, dict) and isinstance(body.get('token'), str):
            token = body['token']
    if token and has_surrogate(token):
        return None  # no token has one, and it could not be hashed
    return token


def login_required(view):
    """Resolve the token to `g.user_id`; a `userid`/`ownerid` naming anyone else is 403."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        g.token = request_token()
        g.user_id = services().users.authenticate(g.token)
        fields = request_fields()
        for name in ('userid', 'ownerid'):
            claimed = fields.get(name)
            if claimed in (None, ''):
                continue
            if str(claimed).strip() != str(g.user_id):
                # Quoted safely: it may be anything, a lone surrogate included.
                shown = str(claimed)[:40].encode('utf-8', 'backslashreplace').decode()
                raise Forbidden('{} {} is not you: a request may only act as its '
                                "token's user".format(name, shown))
        return view(*args, **kwargs)
    return wrapped


def register_error_handlers(app):
    @app.errorhandler(ServiceError)
    def service_error(error):
        extra = {'field': error.field} if error.field else {}
        if error.reason:
            extra['reason'] = error.reason
        return reply(resp.fail(error.msg, **extra), error.status)

    @app.errorhandler(BindError)
    def bind_error(error):
        return reply(resp.fail(str(error), field=error.field), 400)

    @app.errorhandler(HTTPException)
    def http_error(error):
        messages = {404: 'no such page or API call',
                    405: 'this call does not accept the {} method'.format(request.method),
                    413: 'the request is too large'}
        msg = messages.get(error.code, error.description or error.name)
        return reply(resp.fail(msg), error.code or 500)

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
            return reply(resp.fail('the database is unavailable, please try again shortly'),
                         503)
        if pool_exhausted(error):
            log.warning('%s %s: %s', request.method, request.path, error)
            return reply(resp.fail('the server is busy, please try again shortly'), 503)
        log.exception('unhandled error on %s %s', request.method, request.path)
        return reply(resp.fail('internal error, please try again later'), 500)
