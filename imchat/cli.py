"""Commands for `flask --app wsgi <command>` (and cron)."""
import click

from imchat.service.uploads import DEFAULT_MIN_AGE_MINUTES, MIN_AGE_FLOOR_MINUTES


def register_commands(app):
    from imchat.admin_cli import register_admin

    register_admin(app)  # issue 22: flask --app wsgi admin ...

    @app.cli.command('remove-orphans')
    @click.option('--dry-run', is_flag=True, help='list what would be removed, remove nothing')
    @click.option('--min-age', default=DEFAULT_MIN_AGE_MINUTES, show_default=True, type=int,
                  help='minutes a file must have existed (never less than {})'.format(
                      MIN_AGE_FLOOR_MINUTES))
    def remove_orphans(dry_run, min_age):
        """Remove uploaded files that no message, profile or community refers to."""
        uploads = app.extensions['imchat'].uploads
        removed = uploads.remove_orphans(min_age_minutes=min_age, dry_run=dry_run)
        for name in removed:
            click.echo(('would remove ' if dry_run else 'removed ') + name)
        click.echo('{} unreferenced file(s) {}'.format(
            len(removed), 'found' if dry_run else 'removed'))
