"""The fast part of the suite, in a few pytest processes at once.

    .venv/bin/python tests/fast.py                  # both databases
    IMCHAT_TEST_BACKENDS=sqlite .venv/bin/python tests/fast.py -x

runs the tests that start no process (`-m "not process and not browser and not slow"`,
docs/testing.md) in JOBS processes, each a share of them (`--shard K/N`, tests/conftest.py),
and prints each one's report. The fast part is mostly waiting (a socket's answer, a
bounded `expect_nothing`), not CPU, so shares overlap well even on two cores. Other
arguments go to every pytest; `-j N` sets the number of processes. The exit status is
the worst of theirs.
"""
import os
import subprocess
import sys
import tempfile
import time

MARKERS = 'not process and not browser and not slow'
JOBS = 4


def main(argv):
    jobs = JOBS
    if len(argv) >= 2 and argv[0] == '-j':
        jobs, argv = int(argv[1]), argv[2:]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    started = time.monotonic()
    runs = []
    for k in range(1, jobs + 1):
        log = tempfile.TemporaryFile(mode='w+')
        command = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-m', MARKERS,
                   '--shard', '{}/{}'.format(k, jobs)] + argv
        runs.append((subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT),
                     log))
    worst = 0
    for k, (process, log) in enumerate(runs, 1):
        code = process.wait()
        log.seek(0)
        print('--- share {}/{} (exit {}) ---'.format(k, jobs, code))
        print(log.read().rstrip())
        # 5: a share with no test selected (a narrow -k), not a failure.
        worst = max(worst, 0 if code == 5 else code)
    print('--- {} shares in {:.0f} s, exit {} ---'.format(jobs, time.monotonic() - started, worst))
    return worst


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
