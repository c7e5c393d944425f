"""The web client's pages and files, through Flask's test client (the browser tests
drive them in chromium)."""
import os
import re

import pytest

from imchat.ctrl.view import find_templates

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIEW_DIR = os.path.join(ROOT, 'view')
PAGES = ['/user/login.shtml', '/user/register.shtml', '/chat/index.shtml']


@pytest.fixture(params=['sqlite'])
def database_url(request, tmp_path):
    # The pages read nothing from the database: one backend is enough here.
    yield 'sqlite:///{}'.format(tmp_path / 'imchat.db')


@pytest.mark.parametrize('path', PAGES)
def test_each_page_is_served(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == 'text/html'
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<!DOCTYPE html>')
    # The layout was applied and the page's own script is linked.
    assert '/asset/css/app.css' in html and '/asset/js/common.js' in html


def test_pages_carry_a_strict_content_security_policy(client):
    policy = client.get('/chat/index.shtml').headers['Content-Security-Policy']
    assert "script-src 'self'" in policy and "default-src 'self'" in policy
    assert 'unsafe-inline' not in policy


def test_pages_have_no_inline_script_and_load_nothing_from_elsewhere(client):
    for path in PAGES:
        html = client.get(path).get_data(as_text=True)
        assert re.search(r'<script(?![^>]*\bsrc=)[^>]*>', html) is None, path
        assert re.search(r'(src|href)="(https?:)?//', html) is None, path


def test_login_and_register_forms_use_mobile_and_passwd(client):
    for path in ('/user/login.shtml', '/user/register.shtml'):
        html = client.get(path).get_data(as_text=True)
        assert 'name="mobile"' in html and 'name="passwd"' in html


def test_root_goes_to_the_chat_page(client):
    response = client.get('/')
    assert response.status_code == 302
    assert response.headers['Location'].endswith('/chat/index.shtml')


def test_every_template_is_registered_automatically(app):
    routes = {rule.rule: rule.endpoint for rule in app.url_map.iter_rules()}
    found = dict(find_templates(VIEW_DIR))
    assert set(PAGES) <= set(found)
    for route in found:
        assert routes[route].startswith('view.page_'), route


def test_layouts_and_partials_are_not_pages(client):
    assert client.get('/_layout.shtml').status_code == 404
    assert client.get('/_auth_header.shtml').status_code == 404


def test_route_comes_from_the_define_line_or_else_the_path(tmp_path):
    (tmp_path / 'user').mkdir()
    (tmp_path / 'user' / 'login.html').write_text('{# define "/user/login.shtml" #}\n<p>')
    (tmp_path / 'help').mkdir()
    (tmp_path / 'help' / 'faq.html').write_text('<p>no define line</p>')
    (tmp_path / 'shop.html').write_text('{# define "/store/index.shtml" #}\n')
    (tmp_path / '_base.html').write_text('<html>')
    (tmp_path / '_parts').mkdir()
    (tmp_path / '_parts' / 'nav.html').write_text('<nav>')
    (tmp_path / 'notes.txt').write_text('not a template')
    assert sorted(find_templates(str(tmp_path))) == [
        ('/help/faq.shtml', 'help/faq.html'),
        ('/store/index.shtml', 'shop.html'),
        ('/user/login.shtml', 'user/login.html'),
    ]


def test_a_new_template_becomes_a_page_without_code(tmp_path):
    from flask import Flask
    from imchat.ctrl.view import register_views

    views = tmp_path / 'views'
    (views / 'about').mkdir(parents=True)
    (views / 'about' / 'team.html').write_text('<!DOCTYPE html><h1>{{ 6 * 7 }}</h1>')
    app = Flask(__name__, template_folder=str(views))
    register_views(app, str(views))
    response = app.test_client().get('/about/team.shtml')
    assert response.status_code == 200
    assert b'<h1>42</h1>' in response.data


def test_two_templates_may_not_claim_one_route(tmp_path):
    from flask import Flask
    from imchat.ctrl.view import register_views

    (tmp_path / 'a.html').write_text('{# define "/same.shtml" #}')
    (tmp_path / 'b.html').write_text('{# define "/same.shtml" #}')
    with pytest.raises(ValueError, match='/same.shtml'):
        register_views(Flask(__name__), str(tmp_path))


def test_static_files_are_served_under_asset(client):
    for path in ('/asset/js/common.js', '/asset/js/chat/main.js', '/asset/js/auth.js',
                 '/asset/css/app.css', '/asset/img/logo.svg'):
        response = client.get(path)
        assert response.status_code == 200, path
        response.close()


def script_names():
    """Every script of the client, the chat page's modules included."""
    folder = os.path.join(ROOT, 'asset', 'js')
    names = [os.path.relpath(os.path.join(d, f), folder).replace(os.sep, '/')
             for d, _, files in os.walk(folder) for f in files if f.endswith('.js')]
    assert 'chat/main.js' in names and 'common.js' in names
    return sorted(names)


def test_the_chat_page_loads_its_modules_as_javascript(client):
    """Browsers run a `type="module"` script only when served as JavaScript, and every
    module the entry imports must exist."""
    html = client.get('/chat/index.shtml').get_data(as_text=True)
    assert '<script type="module" src="/asset/js/chat/main.js">' in html
    for name in script_names():
        response = client.get('/asset/js/' + name)
        assert response.status_code == 200, name
        assert response.mimetype in ('text/javascript', 'application/javascript'), name
        source = response.get_data(as_text=True)
        response.close()
        for imported in re.findall(r"""from '\./([\w-]+\.js)'""", source):
            assert os.path.exists(os.path.join(ROOT, 'asset', 'js', os.path.dirname(name), imported)), (name, imported)


def test_scripts_never_write_html(client):
    """User data reaches the page through textContent only: no innerHTML, outerHTML,
    insertAdjacentHTML or document.write anywhere in the client."""
    for name in script_names():
        source = client.get('/asset/js/' + name).get_data(as_text=True)
        for sink in ('innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval('):
            assert sink not in source, (name, sink)
