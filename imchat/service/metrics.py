"""Process-wide counters and gauges, rendered in Prometheus' text format at /metrics.

Each app instance owns one `Metrics`; code increments by name. Names and help texts are
declared once here so /metrics always lists every series, even at zero.
"""
import threading

DECLARED = {
    # name: (type, help)
    'imchat_connections_open': ('gauge', 'WebSocket connections open now'),
    'imchat_connections_total': ('counter', 'WebSocket connections accepted'),
    'imchat_messages_stored_total': ('counter', 'Chat messages committed to the database'),
    'imchat_message_batches_total': ('counter', 'Transactions that committed chat messages '
                                                '(messages stored over this: the mean batch)'),
    'imchat_messages_delivered_total': ('counter', 'Chat message frames written to sockets'),
    'imchat_messages_refused_total': ('counter', 'Chat frames refused with code -1'),
    'imchat_queue_drops_total': ('counter', 'Connections cut off because their queue was full'),
    'imchat_http_requests_total': ('counter', 'HTTP requests answered, by status'),
    'imchat_connections_refused_total': ('counter', 'Connections refused at the door, by '
                                                    'reason: full (out of open files), '
                                                    'handshakes, address, body (past '
                                                    'its deadline)'),
    'imchat_bus_messages_received_total': ('counter', 'Chat messages taken off the bus'),
    'imchat_push_sent_total': ('counter', 'Web Push messages a push service accepted'),
    'imchat_push_dropped_total': ('counter', 'Web Push jobs dropped, oldest first, because '
                                             'a queue was full'),
    'imchat_push_failed_total': ('counter', 'Web Push messages not delivered, by reason: '
                                            'gone (404/410: unsubscribed), refused (an '
                                            'endpoint not allowed), refused_by_service, '
                                            'gave_up (after retries)'),
    'imchat_push_retries_total': ('counter', 'Web Push messages tried again after a 429, '
                                             '5xx or no answer'),
    'imchat_push_queued': ('gauge', 'Web Push messages waiting to be sent'),
    'imchat_bus_dropped_total': ('counter', 'Bus input refused, by reason: not_peer, '
                                            'bad_signature, replay, unreadable, '
                                            'beyond_stream'),
}


def _label_text(labels):
    if not labels:
        return ''
    inner = ','.join('{}="{}"'.format(k, str(v).replace('\\', '\\\\').replace('"', '\\"'))
                     for k, v in sorted(labels.items()))
    return '{' + inner + '}'


class Metrics:
    def __init__(self, node=None):
        # Every series carries this node's name (IMCHAT_NODE_ID) as label `node`.
        self.node = node
        self._values = {}
        self._lock = threading.Lock()

    def inc(self, name, amount=1, **labels):
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def dec(self, name, amount=1, **labels):
        self.inc(name, -amount, **labels)

    def set(self, name, value, **labels):
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = value

    def value(self, name, **labels):
        return self._values.get((name, tuple(sorted(labels.items()))), 0)

    def render(self):
        with self._lock:
            values = dict(self._values)
        lines = []
        for name, (kind, help_text) in DECLARED.items():
            lines.append('# HELP {} {}'.format(name, help_text))
            lines.append('# TYPE {} {}'.format(name, kind))
            # Sort by the labels' text: dicts do not order, and label values may mix types.
            series = sorted(((labels, v) for (n, labels), v in values.items() if n == name),
                            key=lambda item: [(k, str(v)) for k, v in item[0]])
            for labels, value in series or [((), 0)]:
                labels = dict(labels)
                if self.node is not None:
                    labels['node'] = self.node
                lines.append('{}{} {}'.format(name, _label_text(labels), value))
        return '\n'.join(lines) + '\n'
