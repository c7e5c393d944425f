"""Stopping background greenlets (imchat.util.greenlets): a greenlet that outlives its
kill is logged and left, never raised about. gevent.killall with a timeout raises
gevent.Timeout, a BaseException: once, out of a test's app teardown (the message
writer's greenlet was waiting on a MariaDB reply), it broke every test after it in
that pytest process."""
import logging

import gevent

from imchat.util.greenlets import kill, stop_gently


def stubborn(after_kill):
    """A greenlet whose clean-up after a kill takes `after_kill` seconds."""
    def run():
        try:
            gevent.sleep(60)
        except gevent.GreenletExit:
            gevent.sleep(after_kill)  # a rollback on a connection that does not answer
            raise
    greenlet = gevent.spawn(run)
    gevent.sleep(0)  # started, asleep
    return greenlet


def test_a_greenlet_that_outlives_its_kill_is_logged_not_raised(caplog):
    caplog.set_level(logging.WARNING, logger='imchat')
    slow, quick = stubborn(0.5), stubborn(0)
    kill([slow, quick], wait=0.1)
    assert quick.dead and not slow.dead
    warning, = [r for r in caplog.records if 'still running' in r.getMessage()]
    assert warning.getMessage().startswith('1 background greenlet(s) still running')
    slow.join(2)
    assert slow.dead


def test_stopping_gently_never_raises_for_a_greenlet_slow_to_die(caplog):
    caplog.set_level(logging.WARNING, logger='imchat')
    slow = stubborn(1.5)
    stop_gently([slow, None], timeout=0.05)  # was: gevent.Timeout out of killall
    assert 'still running' in caplog.text
    slow.join(3)
