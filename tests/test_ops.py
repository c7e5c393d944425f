"""Operations: /healthz, /metrics, the open-file limit and the production server's
startup and shutdown inside this process."""
import json
import logging
import re
import shutil
import urllib.error
import urllib.request

import pymysql
import pytest

from imchat.model.engine import parse_database_url
from imchat.process.server import describe_storage, raise_open_file_limit
from imchat.service.metrics import DECLARED
from tests.harness.live import LiveServer

PROMETHEUS_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"'
                             r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?[0-9.e+]+$')


@pytest.fixture
def live_server(app):
    """The app on gevent's server on a free port, as in production: each request runs in
    its own greenlet, so each opens its own database connection."""
    server = LiveServer(app)
    yield server.url
    server.close()


def http_get(url):
    """(status, content type, body) of a GET; error statuses are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers['Content-Type'], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers['Content-Type'], error.read()


def test_healthz_ok(client):
    response = client.get('/healthz')
    assert response.status_code == 200
    assert response.json == {'code': 0, 'msg': '', 'data': {'database': 'ok'}}


def test_healthz_answers_head(client):
    assert client.head('/healthz').status_code == 200


def test_healthz_503_when_database_is_gone(app, app_config, live_server, tmp_path):
    status, _, body = http_get(live_server + '/healthz')
    assert status == 200 and json.loads(body)['data'] == {'database': 'ok'}

    url = app_config['DATABASE_URL']
    if url.startswith('sqlite:'):
        # The database file and its folder vanish: a new connection cannot open it.
        shutil.rmtree(tmp_path)
    else:
        # The database is dropped under the running server.
        params = parse_database_url(url)[1]
        name = params.pop('database')
        con = pymysql.connect(ssl_disabled=True, connect_timeout=5, **params)
        try:
            con.cursor().execute('DROP DATABASE `{}`'.format(name))
        finally:
            con.close()

    status, content_type, body = http_get(live_server + '/healthz')
    assert status == 503
    assert content_type == 'application/json'
    reply = json.loads(body)
    assert reply['code'] == -1 and reply['data'] == {'database': 'unreachable'}
    assert reply['msg'].startswith('database is unreachable')


def test_metrics_lists_every_series_in_prometheus_text(client):
    response = client.get('/metrics')
    assert response.status_code == 200
    assert response.headers['Content-Type'].startswith('text/plain; version=0.0.4')
    text = response.get_data(as_text=True)
    for name, (kind, _) in DECLARED.items():
        assert '# TYPE {} {}\n'.format(name, kind) in text
        assert re.search(r'^{}(\{{.*\}})? '.format(name), text, re.M), name
    for line in text.splitlines():
        assert line.startswith('# ') or PROMETHEUS_LINE.match(line), line


def without_node(text):
    """The metrics text without the `node` label every series carries."""
    return re.sub(r'node="[^"]*",?', '', text).replace('{}', '')


def test_every_series_names_the_node(app, client):
    node = app.extensions['imchat'].metrics.node
    assert node
    text = client.get('/metrics').get_data(as_text=True)
    series = [line for line in text.splitlines() if not line.startswith('#')]
    assert len(series) >= len(DECLARED)
    for line in series:
        assert 'node="{}"'.format(node) in line, line


def test_metrics_count_http_requests_by_status(client, auth):
    auth.register()
    client.get('/no/such/page')
    client.get('/no/such/page')
    client.post('/user/login', data={'mobile': '1'})
    text = without_node(client.get('/metrics').get_data(as_text=True))
    assert 'imchat_http_requests_total{status="200"} 1\n' in text
    assert 'imchat_http_requests_total{status="404"} 2\n' in text
    assert 'imchat_http_requests_total{status="400"} 1\n' in text
    # The /metrics request itself is counted once it is answered.
    text = without_node(client.get('/metrics').get_data(as_text=True))
    assert 'imchat_http_requests_total{status="200"} 2\n' in text


def test_metrics_reflect_the_registry(app, client):
    app.extensions['imchat'].metrics.inc('imchat_queue_drops_total', 3)
    app.extensions['imchat'].metrics.set('imchat_connections_open', 7)
    text = without_node(client.get('/metrics').get_data(as_text=True))
    assert '\nimchat_queue_drops_total 3\n' in text
    assert '\nimchat_connections_open 7\n' in text


def test_metrics_over_the_real_server(live_server):
    http_get(live_server + '/healthz')
    status, content_type, body = http_get(live_server + '/metrics')
    assert status == 200 and content_type.startswith('text/plain')
    assert 'imchat_http_requests_total{status="200"} 1' in without_node(body.decode())


def test_open_file_limit_is_raised_to_the_hard_limit():
    resource = pytest.importorskip('resource')
    soft, hard = raise_open_file_limit()
    assert (soft, hard) == resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        assert soft == hard


def test_describe_storage_names_no_secret():
    config = {'STORAGE': 'oss', 'OSS_BUCKET': 'chat-media', 'OSS_ENDPOINT': 'oss.example',
              'OSS_ACCESS_KEY_ID': 'key-id-marker', 'OSS_ACCESS_KEY_SECRET': 'secret-marker'}
    text = describe_storage(config)
    assert 'chat-media' in text and 'oss.example' in text
    assert 'marker' not in text
    assert describe_storage({'STORAGE': 'local', 'UPLOAD_DIR': '/srv/imchat/mnt'}) == \
        'local directory /srv/imchat/mnt'


@pytest.mark.parametrize('enabled', [True, False])
def test_access_log_has_one_line_per_request_unless_turned_off(app_config, caplog, enabled):
    from imchat import create_app

    app_config.update(LOG_LEVEL='INFO', ACCESS_LOG=enabled)
    app = create_app(app_config)
    server = LiveServer(app)
    try:
        with caplog.at_level('INFO'):
            http_get(server.url + '/healthz')
    finally:
        server.close()
        app.extensions['imchat'].close()
        logging.getLogger('imchat').setLevel('WARNING')
    lines = [r.getMessage() for r in caplog.records if r.name == 'imchat.access']
    if enabled:
        assert len(lines) == 1 and '"GET /healthz HTTP/1.1" 200' in lines[0]
    else:
        assert lines == []
