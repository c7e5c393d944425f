"""imchat: a self-hostable instant-messaging server and web client."""
import logging
import os

import click
from flask import Flask

from imchat.config import load_config
from imchat.model.engine import describe_database_url
from imchat.model.migrate import applied
from imchat.services import Services

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
log = logging.getLogger('imchat')


def configure_logging(level):
    root = logging.getLogger()
    if not root.handlers:
        # One line per event: time, level, message (the seed's log.log, now with levels).
        logging.basicConfig(format='%(asctime)s %(levelname)s %(message)s')
    logging.getLogger('imchat').setLevel(level.upper())


def create_app(config=None):
    settings = load_config(overrides=config)
    app = Flask(__name__, static_folder=os.path.join(ROOT, 'asset'), static_url_path='/asset',
                template_folder=os.path.join(ROOT, 'view'))
    app.config.update(settings)
    if app.config['PROXY_COUNT']:
        # Behind nginx the peer is the proxy: take the client's address (login limits,
        # logs) and scheme from the headers the trusted proxies set.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config['PROXY_COUNT']
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    configure_logging(app.config['LOG_LEVEL'])

    app.extensions['imchat'] = Services(app.config)
    log.info('database: %s', describe_database_url(app.config['DATABASE_URL']))

    from imchat import cli, ctrl
    from imchat.ctrl import attach, chat, contact, guard, ops, safety as safety_ctrl, user, view
    ctrl.register_error_handlers(app)
    guard.install(app)
    # Refuse a body larger than the largest upload before parsing it.
    app.config['MAX_CONTENT_LENGTH'] = attach.request_limit(app.config['UPLOAD_MAX_BYTES'])
    for blueprint in (user.bp, contact.bp, attach.bp, chat.bp, ops.bp, safety_ctrl.bp):
        app.register_blueprint(blueprint)
    app.after_request(ops.count_response)
    # The original's RegisterView: a page for every template under view/.
    view.register_views(app, app.template_folder,
                        app.extensions['imchat'].storage.media_origin)

    cli.register_commands(app)

    @app.cli.command('init-db')
    def init_db():
        """Create any missing table (the server also does this at start)."""
        click.echo('tables ready in ' + describe_database_url(app.config['DATABASE_URL']))

    @app.cli.command('migrate')
    def migrate_command():
        """Apply pending schema migrations (the server also does this at start)."""
        services = app.extensions['imchat']
        for migration_id in services.applied_migrations:
            click.echo('applied ' + migration_id)
        click.echo('schema up to date in {}: {}'.format(
            describe_database_url(app.config['DATABASE_URL']),
            ', '.join(applied(app.config['DATABASE_URL']))))

    @app.cli.command('backup')
    @click.argument('dest')
    def backup_command(dest):
        """Copy the SQLite database, consistently, to the new file DEST while the server
        runs."""
        from imchat.model.backup import BackupError, backup_sqlite

        try:
            pages = backup_sqlite(app.config['DATABASE_URL'], dest)
        except BackupError as error:
            raise click.ClickException(str(error))
        click.echo('backed up {} to {} ({} pages)'.format(
            describe_database_url(app.config['DATABASE_URL']), dest, pages))

    return app
