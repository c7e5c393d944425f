"""Reports (issue 22): a user or a message, with a reason from a short list and
optional text, stored with the message as it was at that moment (a later recall
erases the message, not the report). Operators list and resolve them (imchat/cli.py)."""
import json
import logging

from pony.orm import db_session, select

from imchat.protocol import CMD_ROOM_MSG, CMD_SINGLE_MSG
from imchat.service.errors import BadRequest, NotFound
from imchat.util.clock import now_ms

log = logging.getLogger(__name__)


class Reports:
    def __init__(self, db, contacts):
        self.db = db
        self.contacts = contacts

    def report(self, reporter_id: int, reason: str, user_id=None, msgid=None, memo='') -> int:
        """Store a report; returns its id. Raises BadRequest, NotFound."""
        if not user_id and not msgid:
            raise BadRequest('dstid or msgid: name whom or what you report', field='dstid')
        with db_session:
            content = ''
            if msgid:
                message = self.db.Message.get(id=msgid)
                if message is None or not self._may_see(reporter_id, message):
                    raise NotFound('no message {}'.format(msgid), field='msgid',
                                   reason='not_found.message')
                user_id = message.userid
                content = json.dumps(message.to_wire(), ensure_ascii=False)
            elif not self.db.User.exists(id=user_id):
                raise NotFound('no user {}'.format(user_id), field='dstid',
                               reason='not_found.user')
            report = self.db.Report(reporterid=reporter_id, userid=user_id, msgid=msgid or 0,
                                    reason=reason, memo=memo or '', content=content,
                                    createat=now_ms())
            report.flush()
            log.info('user %s reported user %s (message %s): %s', reporter_id, user_id,
                     msgid or '-', reason)
            return report.id

    def _may_see(self, user_id, message):
        if message.cmd == CMD_SINGLE_MSG:
            return user_id in (message.userid, message.dstid)
        if message.cmd == CMD_ROOM_MSG:
            return self.contacts.is_member(user_id, message.dstid)
        return False

    def listing(self, include_resolved=False) -> list:
        with db_session:
            query = select(r for r in self.db.Report)
            if not include_resolved:
                query = query.filter(lambda r: r.resolvedat == 0)
            return [r.to_dict() for r in query.order_by(lambda r: r.id)[:]]

    def resolve(self, report_id: int, actor: str, resolution: str) -> dict:
        with db_session:
            report = self.db.Report.get(id=report_id)
            if report is None:
                raise NotFound('no report {}'.format(report_id), reason='not_found.report')
            report.set(resolvedat=now_ms(), resolvedby=actor, resolution=resolution or '')
            return report.to_dict()
