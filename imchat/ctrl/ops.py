"""Operations endpoints: /healthz for load balancers and process managers, /metrics for
Prometheus. Neither needs a token; the sample nginx site keeps /metrics local."""
from flask import Blueprint, Response

from imchat.ctrl import ok, reply, services
from imchat.service.errors import Unavailable
from imchat.service.health import check_database
from imchat.util import resp

bp = Blueprint('ops', __name__)

PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8'


@bp.route('/healthz', methods=['GET', 'HEAD'])
def healthz():
    svc = services()
    # With several nodes, whether the bus is up (a node whose bus is down still serves
    # its own connections, so it stays in service: 200).
    extra = {} if svc.bus is None else {'bus': svc.bus.status()}
    try:
        check_database(svc.db, svc.db_watch)
    except Unavailable as error:
        return reply(resp.fail(error.msg, error.reason,
                               data=dict({'database': 'unreachable'}, **extra)),
                     error.status)
    return ok(dict({'database': 'ok'}, **extra))


@bp.route('/metrics', methods=['GET'])
def metrics():
    return Response(services().metrics.render(), mimetype=None, content_type=PROMETHEUS_TEXT)


def count_response(response):
    """after_request hook: count every answered request by its status."""
    services().metrics.inc('imchat_http_requests_total', status=str(response.status_code))
    return response
