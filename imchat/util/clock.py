import time


def now_ms():
    """Milliseconds since the epoch, the unit of every `createat` on the wire."""
    return int(time.time() * 1000)
