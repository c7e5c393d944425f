"""`flask --app wsgi admin ...`: the operators' commands (issue 22; docs/contacts.md).
USER is an id or a mobile. Every action is logged with who (`--by`, default the shell's
user), what and when, in the `admin_log` table and the log. They act on the database
the release's `env` names, and through the bus (IMCHAT_BUS) on every running node."""
import getpass
import json

import click

from imchat.model.safety import JOIN_MODES
from imchat.service.errors import ServiceError

BY = click.option('--by', default=None, help='who acts (default: the shell user)')


def _actor(by):
    if by:
        return by
    try:
        return getpass.getuser()
    except Exception:
        return 'operator'


def register_admin(app):
    @app.cli.group('admin')
    def admin():
        """Operators' commands: find, ban, unban, erase, reports, resolve, mkcommunity,
        rmcommunity, counts."""

    def services():
        return app.extensions['imchat']

    def user_id(key):
        try:
            return services().admin.find_user(key)['id']
        except ServiceError as error:
            raise click.ClickException(error.msg)

    def show(data):
        click.echo(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True))

    @admin.command('find')
    @click.argument('user')
    def find(user):
        """Show USER (an id or a mobile)."""
        try:
            show(services().admin.find_user(user))
        except ServiceError as error:
            raise click.ClickException(error.msg)

    @admin.command('ban')
    @click.argument('user')
    @click.option('--reason', default='', help='shown to them when they try to log in')
    @BY
    def ban(user, reason, by):
        """Ban USER: end every login, close every socket, refuse logins."""
        target = user_id(user)
        ended = services().admin.ban(_actor(by), target, reason)
        click.echo('banned user {} ({} logins ended)'.format(target, ended))

    @admin.command('unban')
    @click.argument('user')
    @BY
    def unban(user, by):
        """Let USER log in again."""
        target = user_id(user)
        try:
            services().admin.unban(_actor(by), target)
        except ServiceError as error:
            raise click.ClickException(error.msg)
        click.echo('unbanned user {}'.format(target))

    @admin.command('erase')
    @click.argument('msgid', type=int)
    @BY
    def erase(msgid, by):
        """Erase message MSGID for everyone, as a recall does."""
        try:
            outcome = services().admin.erase(_actor(by), msgid)
        except ServiceError as error:
            raise click.ClickException(error.msg)
        refused = getattr(outcome, 'msg', None)
        if refused:
            raise click.ClickException(refused)
        click.echo('erased message {}'.format(msgid))

    @admin.command('reports')
    @click.option('--all', 'everything', is_flag=True, help='resolved ones too')
    def reports(everything):
        """List the reports not yet resolved."""
        for row in services().reports.listing(include_resolved=everything):
            show(row)

    @admin.command('resolve')
    @click.argument('report_id', type=int)
    @click.option('--note', default='', help='what was done')
    @BY
    def resolve(report_id, note, by):
        """Mark report REPORT_ID resolved."""
        actor = _actor(by)
        try:
            services().reports.resolve(report_id, actor, note)
        except ServiceError as error:
            raise click.ClickException(error.msg)
        services().admin._log(actor, 'resolve', 'report {} {!r}'.format(report_id, note))
        click.echo('resolved report {}'.format(report_id))

    @admin.command('mkcommunity')
    @click.argument('owner')
    @click.argument('name')
    @click.option('--joinmode', type=click.Choice(JOIN_MODES), default=None)
    @BY
    def mkcommunity(owner, name, joinmode, by):
        """Make a community NAME owned by OWNER."""
        try:
            view = services().admin.make_community(_actor(by), user_id(owner), name,
                                                   joinmode, services().roles)
        except ServiceError as error:
            raise click.ClickException(error.msg)
        click.echo('made community {}'.format(view['id']))

    @admin.command('rmcommunity')
    @click.argument('community_id', type=int)
    @BY
    def rmcommunity(community_id, by):
        """Remove community COMMUNITY_ID and its memberships (messages stay stored)."""
        try:
            members = services().admin.remove_community(_actor(by), community_id)
        except ServiceError as error:
            raise click.ClickException(error.msg)
        click.echo('removed community {} ({} members)'.format(community_id, members))

    @admin.command('counts')
    def counts():
        """Users, messages, communities, bans, open reports, connected users."""
        show(services().admin.counts())
