"""The reply envelope of docs/protocol.md, as plain dicts.

    {"code": 0, "msg": "", "data": ...}
    {"code": 0, "msg": "", "rows": [...], "total": N}
    {"code": -1, "msg": "why", "reason": "area.what"}

`msg` is for people; `reason` is the stable machine word a client keys its own text on
(docs/protocol.md, "Error reasons").
"""

CODE_OK = 0
CODE_FAIL = -1


def ok(data=None, msg=''):
    return {'code': CODE_OK, 'msg': msg, 'data': data}


def rows(items, total=None, msg=''):
    items = list(items)
    return {'code': CODE_OK, 'msg': msg, 'rows': items,
            'total': len(items) if total is None else total}


def fail(msg, reason, **extra):
    body = {'code': CODE_FAIL, 'msg': msg, 'reason': reason}
    body.update(extra)
    return body
