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
    try:
        check_database(services().db, services().db_watch)
    except Unavailable as error:
        return reply(resp.fail(error.msg, data={'database': 'unreachable'}), error.status)
    return ok({'database': 'ok'})


@bp.route('/metrics', methods=['GET'])
def metrics():
    return Response(services().metrics.render(), mimetype=None, content_type=PROMETHEUS_TEXT)


def count_response(response):
    """after_request hook: count every answered request by its status."""
    services().metrics.inc('imchat_http_requests_total', status=str(response.status_code))
    return response
