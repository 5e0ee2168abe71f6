#!/usr/bin/env python3
# hostile_rss.py -- the RSS figure of issue 9: streamdbd under N clients that
# pipeline PINGs and never read.
# usage: tests/integration/hostile_rss.py STREAMDBD_BINARY NCLIENTS MB_PER_CLIENT [PORT]
# Starts streamdbd with the default limits (conf/streamdbd.json values;
# durability none), opens N connections that say HELLO and then pipeline empty
# PINGs without ever reading (non-blocking sends until 2 s pass without
# progress), and prints the daemon's VmRSS / RssAnon / VmHWM idle and then.
# Not part of `make test` (it may take GBs on a daemon without the caps).
import os, socket, struct, subprocess, sys, time, select, shutil, tempfile
binary, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
port = int(sys.argv[4]) if len(sys.argv) > 4 else 7993
d = tempfile.mkdtemp(prefix='sdbm.')
conf = os.path.join(d, 'conf.json')
open(conf, 'w').write('{"listen": "127.0.0.1:%d", "unix_socket": "%s/s.sock", "data_dir": "%s/data", '
                      '"engine": {"durability": "none"}}' % (port, d, d))
p = subprocess.Popen([binary, '-c', conf], stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, 'log'), 'w'))
def status():
    f = {}
    for line in open('/proc/%d/status' % p.pid):
        k, _, v = line.partition(':')
        f[k] = v.strip()
    return '  '.join('%s %s' % (k, f[k]) for k in ('VmRSS', 'RssAnon', 'VmHWM'))
try:
    for _ in range(200):
        if 'ready' in open(os.path.join(d, 'log')).read(): break
        time.sleep(0.05)
    print('idle:      ', status())
    def frame(op, rid, payload=b''):
        return struct.pack('<BBBBII', 0xDB, op, 0, 0, len(payload), rid) + payload
    hello = b'STDB' + struct.pack('<HHHH', 1, 1, 0, 1) + b'm'
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(frame(0x01, 1, hello))
        s.recv(1000)
        s.setblocking(False)
        socks.append(s)
    buf = b''.join(frame(0x02, i + 2) for i in range(mb * 1024 * 1024 // 12))
    sent = [0] * n
    while True:
        for i, s in enumerate(socks):
            while sent[i] < len(buf):
                try:
                    sent[i] += s.send(buf[sent[i]:sent[i] + (1 << 20)])
                except BlockingIOError:
                    break
        pending = [s for i, s in enumerate(socks) if sent[i] < len(buf)]
        if not pending: break
        _, w, _ = select.select([], pending, [], 2.0)
        if not w: break
    time.sleep(1)
    print('%d clients, %d MB of PINGs sent, none read:' % (n, sum(sent) >> 20), status())
finally:
    p.terminate(); p.wait(); shutil.rmtree(d)
