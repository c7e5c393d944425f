"""Configuration, password hashing, database URLs and the CLI."""
import pytest

from imchat.config import load_config
from imchat.model.engine import DatabaseURLError, describe_database_url, parse_database_url
from imchat.util.passwd import DEFAULT_COST, check_passwd, make_passwd


def test_config_reads_environment():
    config = load_config({'IMCHAT_PORT': '9001', 'IMCHAT_HOST': '0.0.0.0',
                          'IMCHAT_TOKEN_TTL': '60', 'IMCHAT_DATABASE_URL': 'sqlite:///x.db'})
    assert config['PORT'] == 9001 and config['HOST'] == '0.0.0.0'
    assert config['TOKEN_TTL'] == 60 and config['DATABASE_URL'] == 'sqlite:///x.db'


def test_config_defaults():
    config = load_config({})
    assert config['PORT'] == 8080 and config['HOST'] == '127.0.0.1'
    assert config['DATABASE_URL'].startswith('sqlite:///data/')
    assert len(config['SECRET_KEY']) >= 32


def test_config_overrides_win():
    assert load_config({'IMCHAT_PORT': '1'}, {'PORT': 2})['PORT'] == 2


def test_config_rejects_bad_number():
    with pytest.raises(ValueError, match='IMCHAT_PORT'):
        load_config({'IMCHAT_PORT': 'eighty'})


def test_real_password_hash_round_trip():
    stored = make_passwd('correct horse')
    assert stored.startswith('scrypt${}$'.format(1 << DEFAULT_COST))
    assert check_passwd('correct horse', stored)
    assert not check_passwd('wrong horse', stored)
    assert make_passwd('correct horse') != stored


def test_check_passwd_rejects_garbage():
    assert not check_passwd('x', 'md5$abc')
    assert not check_passwd('x', '')


@pytest.mark.parametrize('url, kind', [
    ('sqlite:///data/imchat.db', 'sqlite'),
    ('sqlite:////tmp/imchat.db', 'sqlite'),
    ('mysql://root:pw@127.0.0.1:3306/imchat', 'mysql'),
])
def test_parse_database_url(url, kind):
    assert parse_database_url(url)[0] == kind


def test_mysql_url_fields_and_password_hidden():
    kind, params = parse_database_url('mysql://bob:s%40cret@db.local:3307/chat')
    assert params == {'host': 'db.local', 'port': 3307, 'user': 'bob', 'password': 's@cret',
                      'database': 'chat'}
    assert 's@cret' not in describe_database_url('mysql://bob:s%40cret@db.local:3307/chat')


@pytest.mark.parametrize('url', ['postgres://x/y', 'mysql://host', 'sqlite://'])
def test_bad_database_url(url):
    with pytest.raises(DatabaseURLError):
        parse_database_url(url)


def test_init_db_command(runner, app):
    result = runner.invoke(args=['init-db'])
    assert result.exit_code == 0 and 'tables ready' in result.output


@pytest.mark.process
def test_importing_wsgi_connects_to_nothing(tmp_path):
    """Import builds no app: no database file appears and an unreachable MySQL is fine."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, IMCHAT_DATABASE_URL='mysql://x@127.0.0.1:1/none')
    result = subprocess.run([sys.executable, '-c', 'import wsgi; print(wsgi.create_app)'],
                            capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path) == []


def test_readme_documents_every_setting():
    import os
    import re

    from imchat.config import SETTINGS
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, 'README.md'), encoding='utf-8') as readme:
        documented = set(re.findall(r'^\| `IMCHAT_(\w+)` \|', readme.read(), re.M))
    assert documented == set(SETTINGS)
