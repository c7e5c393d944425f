"""Who uploaded what: a daily quota per user, and removing files nothing refers to.

Every stored upload is recorded (`Upload`: its name, size, uploader and time). A user may
upload at most `quota` bytes in any 24 hours. A file is *referenced* when a message's
`url` or `pic`, a user's `avatar` or a community's `icon` names it; `remove_orphans` (the
`remove-orphans` command, safe to run from cron) deletes the others, never one younger
than a floor of minutes, since a client uploads a file first and sends its message after.
"""
import logging
import re
import time

from pony.orm import db_session, select

from imchat.service.errors import TooManyRequests
from imchat.service.mediatypes import display_name, file_type_of_name
from imchat.service.storage import STORED_NAME, describe_size, name_of_url, spool_upload
from imchat.util.clock import now_ms

log = logging.getLogger('imchat')

QUOTA_WINDOW_MS = 24 * 3600 * 1000
# remove-orphans never deletes a file younger than this (minutes), whatever it is told.
MIN_AGE_FLOOR_MINUTES = 10
DEFAULT_MIN_AGE_MINUTES = 60
# Message rows read per query while collecting references.
SCAN_PAGE = 5000
_NAME_IN_TEXT = re.compile(STORED_NAME.pattern)


class UploadService:
    def __init__(self, db, storage, quota_bytes, file_types=frozenset()):
        self.db = db
        self.storage = storage
        self.quota_bytes = quota_bytes
        # Extensions a file (media 10) may have (IMCHAT_FILE_TYPES).
        self.file_types = file_types
        # Bytes being stored right now per user, counted before the quota query (no
        # yield in between), so concurrent uploads cannot all pass one check.
        self._in_flight = {}

    def store_file(self, user_id, stream, name):
        """Keep a file (media 10) named `name` by the client; return {url, name (display
        text), size}. Raises UnsupportedMediaType (an extension not allowed) and what
        `store` raises; the quota counts files as any upload."""
        media = file_type_of_name('file', name, self.file_types)
        url, size = self._store(user_id, stream, media)
        return {'url': url, 'name': display_name(name), 'size': size}

    def store(self, user_id, stream):
        """Check and keep one upload of `user_id`; return its URL. Raises TooManyRequests
        (over the daily quota) and whatever `Storage.store` raises."""
        return self._store(user_id, stream, None)[0]

    def _store(self, user_id, stream, as_file):
        upload = spool_upload(stream, self.storage.max_bytes, as_file)
        try:
            self._reserve(user_id, upload.size)
            try:
                url = self.storage.save(upload)
                with db_session:
                    self.db.Upload(name=name_of_url(url), userid=user_id, size=upload.size,
                                   createat=now_ms())
            finally:
                self._release(user_id, upload.size)
            return url, upload.size
        finally:
            upload.close()

    def _reserve(self, user_id, size):
        if not self.quota_bytes:
            return
        # Read together with the reservation, before the query yields: an upload still in
        # flight now is counted here, and one that finishes during the query is then
        # counted twice at worst, never missed.
        in_flight = self._in_flight[user_id] = self._in_flight.get(user_id, 0) + size
        try:
            since = now_ms() - QUOTA_WINDOW_MS
            with db_session:
                used = select(u.size for u in self.db.Upload
                              if u.userid == user_id and u.createat > since).sum() or 0
            if used + in_flight > self.quota_bytes:
                raise TooManyRequests('file: the upload quota of {} a day is used up; try again '
                                      'tomorrow'.format(describe_size(self.quota_bytes)),
                                      field='file', reason='upload.quota')
        except BaseException:
            self._release(user_id, size)
            raise

    def _release(self, user_id, size):
        if not self.quota_bytes:
            return
        left = self._in_flight.get(user_id, 0) - size
        if left > 0:
            self._in_flight[user_id] = left
        else:
            self._in_flight.pop(user_id, None)

    def referenced_names(self):
        """Every stored name a message, profile or community refers to."""
        names = set()
        with db_session:
            for text in select(u.avatar for u in self.db.User if u.avatar != '')[:]:
                names.update(_names_in(text))
            for text in select(c.icon for c in self.db.Community if c.icon != '')[:]:
                names.update(_names_in(text))
        cursor = 0
        while True:
            with db_session:
                rows = select((m.id, m.url, m.pic) for m in self.db.Message
                              if m.id > cursor and (m.url != '' or m.pic != '')).order_by(1)[:SCAN_PAGE]
            for _, url, pic in rows:
                names.update(_names_in(url))
                names.update(_names_in(pic))
            if len(rows) < SCAN_PAGE:
                return names
            cursor = rows[-1][0]

    def remove_orphans(self, min_age_minutes=DEFAULT_MIN_AGE_MINUTES, dry_run=False):
        """Delete stored files no message or profile refers to and older than
        `min_age_minutes` (at least MIN_AGE_FLOOR_MINUTES); return their names."""
        min_age = max(MIN_AGE_FLOOR_MINUTES, min_age_minutes) * 60
        # Files are listed before references are read: a file uploaded and referenced
        # while this runs is either too young, or its reference is seen.
        cutoff = time.time() - min_age
        candidates = [name for name, modified in self.storage.stored_files()
                      if modified <= cutoff]
        if not candidates:
            return []
        referenced = self.referenced_names()
        orphans = sorted(name for name in candidates if name not in referenced)
        if dry_run:
            return orphans
        for name in orphans:
            self.storage.remove(name)
            with db_session:
                self.db.Upload.select(lambda u: u.name == name).delete(bulk=True)
            log.info('removed unreferenced upload %s', name)
        return orphans


def _names_in(text):
    return {match.group(0) for match in _NAME_IN_TEXT.finditer(text or '')}
