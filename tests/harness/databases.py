"""Databases for the tests' apps, ready at once: a copy of one made at the start of the
session rather than tables and migrations made again for every test.

Making the schema is what a new test database costs most (about 0.5 s on MariaDB, 0.1 s
on SQLite, for each of a thousand tests); a copy costs a tenth. The copy is what
`create_app` would make (the schema does not depend on any setting), with a deployment
id of its own, so two tests' databases are two deployments on the bus as before. Tests
of making a database, or of migrating one, call `create_app` on an empty database
themselves and never come here."""
import os
import secrets
import shutil
import sqlite3
import uuid
from urllib.parse import urlsplit

from imchat import create_app

# The row holding the deployment's id (imchat.service.bus.node.DEPLOYMENT).
DEPLOYMENT = 'deployment'


class Templates:
    """One schema-ready database per backend, made on first use, copied for each test."""

    def __init__(self, folder, mysql_connect):
        self.folder = folder
        self.mysql_connect = mysql_connect  # () -> an admin pymysql connection
        self._sqlite = None
        self._mysql = None  # (database name, [table names])

    def prepare(self, database_url):
        """Make `database_url`'s database a copy of the template, unless it exists."""
        if database_url.startswith('sqlite:///'):
            self._copy_sqlite(database_url[len('sqlite:///'):])
        elif database_url.startswith('mysql://'):
            self._copy_mysql(urlsplit(database_url).path.lstrip('/'))

    def close(self):
        if self._mysql is not None:
            con = self.mysql_connect()
            try:
                con.cursor().execute('DROP DATABASE IF EXISTS `{}`'.format(self._mysql[0]))
            finally:
                con.close()
            self._mysql = None

    def _copy_sqlite(self, path):
        if os.path.exists(path):
            return
        if self._sqlite is None:
            template = os.path.join(self.folder, 'template.db')
            _make('sqlite:///' + template, self.folder)
            con = sqlite3.connect(template)
            try:
                con.execute('PRAGMA wal_checkpoint(TRUNCATE)')  # all of it in the one file
            finally:
                con.close()
            self._sqlite = template
        shutil.copyfile(self._sqlite, path)
        con = sqlite3.connect(path)
        try:
            with con:
                con.execute('UPDATE stream SET pos = ? WHERE name = ?',
                            (secrets.randbits(62), DEPLOYMENT))
        finally:
            con.close()

    def _copy_mysql(self, name):
        con = self.mysql_connect()
        try:
            cur = con.cursor()
            if cur.execute('SHOW DATABASES LIKE %s', (name,)):
                return
            if self._mysql is None:
                template = 'imchat_template_' + uuid.uuid4().hex[:12]
                url = urlsplit(os.environ.get('IMCHAT_TEST_MYSQL', 'mysql://root@127.0.0.1:3306'))
                _make('{}://{}/{}'.format(url.scheme, url.netloc, template), self.folder)
                cur.execute('SELECT table_name FROM information_schema.tables '
                            'WHERE table_schema = %s', (template,))
                self._mysql = (template, [row[0] for row in cur.fetchall()])
            template, tables = self._mysql
            cur.execute('CREATE DATABASE `{}` CHARACTER SET utf8mb4'.format(name))
            for table in tables:
                cur.execute('CREATE TABLE `{0}`.`{2}` LIKE `{1}`.`{2}`'.format(name, template,
                                                                            table))
                cur.execute('INSERT INTO `{0}`.`{2}` SELECT * FROM `{1}`.`{2}`'.format(
                    name, template, table))
            cur.execute('UPDATE `{}`.stream SET pos = %s WHERE name = %s'.format(name),
                        (secrets.randbits(62), DEPLOYMENT))
            con.commit()
        finally:
            con.close()


def _make(database_url, folder):
    app = create_app({'DATABASE_URL': database_url, 'UPLOAD_DIR': os.path.join(folder, 'mnt'),
                      'LOG_LEVEL': 'ERROR'})
    app.extensions['imchat'].close()
