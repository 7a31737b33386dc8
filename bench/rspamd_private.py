"""A private rspamd instance for the benchmarks (bench/classifier_bench.py, bench/relay.py).

Its own Redis (for Bayes) and its own ports on loopback; network modules off (RBL, SURBL, fuzzy,
phishing feeds, SPF/DKIM/DMARC/ARC, ASN, neural, reputation, ...) and DNS pointed at a closed
loopback port, so it runs the same offline checks Portcullis's benchmarks run. Workers: a normal
worker (scanning over HTTP, `rspamc`), a controller (learning), and a proxy worker that is either
off or, with `milter=True`, a milter that scans in its own process (`self_scan`) for an MTA.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

OFF = ["rbl", "surbl", "fuzzy_check", "phishing", "asn", "mx_check", "spf", "dkim", "dmarc", "arc",
       "url_redirector", "greylist", "ratelimit", "neural", "dcc", "external_services",
       "metadata_exporter", "replies", "reputation", "history_redis", "rspamd_update", "p0f",
       "antivirus", "clickhouse", "elastic", "bimi", "aws_s3", "external_relay", "dkim_signing",
       "arc_signing"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=180):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listening on 127.0.0.1:{port}")


class PrivateRspamd:
    """`with PrivateRspamd(root) as r:` starts Redis and rspamd, `r.ports` names their ports,
    `r.pid` is rspamd's main process; leaving the block stops both. `workers`: processes of the
    scanning worker (the normal one, or the milter proxy with `milter=True`)."""

    def __init__(self, root, workers=1, milter=False):
        self.root, self.workers, self.milter = root, workers, milter
        self.ports = {k: free_port() for k in ("redis", "normal", "controller", "proxy", "fuzzy")}
        self.redis = self.daemon = None

    @property
    def pid(self):
        return self.daemon.pid

    def learn(self, cls, directory, timeout=1800):
        """Teach rspamd's Bayes every message in `directory` as `cls` ("spam" or "ham") through the controller."""
        subprocess.run(["rspamc", "-h", f"127.0.0.1:{self.ports['controller']}", "-n", "4", f"learn_{cls}", directory],
                       check=True, stdout=subprocess.DEVNULL, timeout=timeout)

    def scanned(self):
        """Messages rspamd has scanned since it started (its controller's `/stat`)."""
        url = f"http://127.0.0.1:{self.ports['controller']}/stat"
        with urllib.request.urlopen(url, timeout=10) as reply:
            return json.load(reply)["scanned"]

    def _configure(self):
        root, ports = self.root, self.ports
        shutil.rmtree(root, ignore_errors=True)
        for d in ("local.d", "override.d", "db", "run", "log"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        redis = f"127.0.0.1:{ports['redis']}"
        normal = 1 if self.milter else self.workers
        if self.milter:
            proxy = (f'bind_socket = "127.0.0.1:{ports["proxy"]}";\ncount = {self.workers};\n'
                     'milter = yes;\ntimeout = 120s;\nupstream "local" {\n  default = yes;\n'
                     '  self_scan = yes;\n}\n')
        else:
            proxy = f'bind_socket = "127.0.0.1:{ports["proxy"]}";\ncount = 1;\n'
        files = {
            "override.d/worker-normal.inc": f'bind_socket = "127.0.0.1:{ports["normal"]}";\ncount = {normal};\n',
            "override.d/worker-controller.inc": f'bind_socket = "127.0.0.1:{ports["controller"]}";\n'
                                                'count = 1;\nsecure_ip = "127.0.0.1";\n',
            "override.d/worker-proxy.inc": proxy,
            "override.d/worker-fuzzy.inc": f'bind_socket = "127.0.0.1:{ports["fuzzy"]}";\ncount = -1;\n',
            "local.d/logging.inc": 'type = "file";\nfilename = "$LOGDIR/rspamd.log";\nlevel = "error";\n',
            "local.d/redis.conf": f'servers = "{redis}";\n',
            "local.d/classifier-bayes.conf": f'backend = "redis";\nservers = "{redis}";\nmin_learns = 200;\n'
                                             'autolearn = false;\n',
            # Any lookup left goes to a closed port on loopback and fails at once: network checks off.
            "local.d/options.inc": 'dns { nameserver = ["127.0.0.1:9"]; timeout = 0.1s; retransmits = 1; }\n',
        }
        for module in OFF:
            files[f"local.d/{module}.conf"] = "enabled = false;\n"
        for name, text in files.items():
            with open(os.path.join(root, name), "w") as f:
                f.write(text)

    def __enter__(self):
        self._configure()
        root = self.root
        try:
            self.redis = subprocess.Popen(
                ["redis-server", "--port", str(self.ports["redis"]), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", os.path.join(root, "db")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(self.ports["redis"])
            self.daemon = subprocess.Popen(
                ["rspamd", "-f", "-i", "-u", "root", "-g", "root", "-c", "/etc/rspamd/rspamd.conf",
                 f"--var=LOCAL_CONFDIR={root}", f"--var=DBDIR={root}/db", f"--var=RUNDIR={root}/run",
                 f"--var=LOGDIR={root}/log"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for worker in ("normal", "controller") + (("proxy",) if self.milter else ()):
                wait_port(self.ports[worker])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_):
        for p in (self.daemon, self.redis):
            if p is not None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
