"""The web client's pages: every template under `view/` gets a GET route, as the
original's `RegisterView` does with Go's `{{define "/user/login.shtml"}}`.

The route of a template is the name its first line declares, `{# define "/path" #}`;
a template without that line is served at its file path with `.html` turned into
`.shtml` (`view/user/login.html` -> `/user/login.shtml`). Files and folders whose
names start with `_` are layouts and partials, never pages.

The pages carry no user data: each reads the login token from the browser's
localStorage and talks to the JSON API, so a token never appears in a URL or a log.
"""
import logging
import os
import re

from flask import Blueprint, current_app, redirect, render_template

log = logging.getLogger('imchat')

DEFINE_LINE = re.compile(r'^\s*\{#\s*define\s+"(/[^"\s]+)"\s*#\}')

# Pages load nothing from outside the app (but for uploads kept in OSS, from the one
# origin they are served from), and no inline script can run: whatever a user typed is
# only ever shown as text, and this header is the second fence.
def content_security_policy(media_origin=None):
    media = ' ' + media_origin if media_origin else ''
    return '; '.join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:" + media,
        "media-src 'self' blob:" + media,
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ])


HOME_PAGE = '/chat/index.shtml'


def find_templates(view_dir):
    """Yield (route, template name) for every page template under `view_dir`."""
    for folder, subfolders, files in os.walk(view_dir):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(('_', '.')))
        for filename in sorted(files):
            if filename.startswith(('_', '.')) or not filename.endswith('.html'):
                continue
            path = os.path.join(folder, filename)
            name = os.path.relpath(path, view_dir).replace(os.sep, '/')
            with open(path, encoding='utf-8') as template:
                match = DEFINE_LINE.match(template.readline())
            route = match.group(1) if match else '/' + name[:-len('.html')] + '.shtml'
            yield route, name


def _page_view(template_name, media_origin):
    policy = content_security_policy(media_origin)

    def page():
        response = current_app.make_response(render_template(template_name,
                                                             media_origin=media_origin))
        response.headers['Content-Security-Policy'] = policy
        response.headers['X-Content-Type-Options'] = 'nosniff'
        response.headers['Referrer-Policy'] = 'same-origin'
        response.headers['Cache-Control'] = 'no-cache'
        return response
    return page


def register_views(app, view_dir, media_origin=None):
    """The original's RegisterView: one GET route per template, and `/` to the app.
    `media_origin`: where uploads are served from, when not from the app itself."""
    bp = Blueprint('view', __name__)
    routes = {}
    for route, name in find_templates(view_dir):
        if route in routes:
            raise ValueError('view/{} and view/{} both define {}'.format(
                routes[route], name, route))
        routes[route] = name
        endpoint = 'page_' + re.sub(r'\W', '_', name[:-len('.html')])
        bp.add_url_rule(route, endpoint, _page_view(name, media_origin), methods=['GET'])

    @bp.route('/')
    def home():
        # The server cannot see the token (it lives in localStorage); the chat page
        # sends a visitor without one on to the login page.
        return redirect(HOME_PAGE)

    app.register_blueprint(bp)
    log.debug('pages: %s', ', '.join(sorted(routes)))
    return routes
