"""Real registries for the tests: Debian's docker-registry on 127.0.0.1,
over plain HTTP or HTTPS with a certificate the test makes, open or behind
token authentication served by a small token server here; and a proxy in
front of a registry that can corrupt or slow what it forwards, and records
every request it saw."""

import base64
import http.client
import http.server
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
import datetime
import ipaddress

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(directory, name="127.0.0.1"):
    """A self-signed certificate for 127.0.0.1: (cert.pem, key.pem, key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(name))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path, key, cert


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """The distribution token flow's issuer: grants the requested scope to
    USER:PASSWORD given as basic auth, refuses everyone else."""

    def __init__(self, directory, user, password, service="isola-test", issuer="isola-test-issuer"):
        self.cert_path, _, self.key, self.cert = make_cert(Path(directory) / "token")
        self.user, self.password, self.service, self.issuer = user, password, service, issuer
        self.port = free_port()
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                want = "Basic " + base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
                if self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    body = b'{"details":"invalid username or password"}'
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                query = dict(p.split("=", 1) for p in self.path.split("?", 1)[1].split("&") if "=" in p)
                scope = urllib.request.unquote(query.get("scope", ""))
                body = json.dumps({"token": server.token(scope)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def realm(self):
        return f"http://127.0.0.1:{self.port}/token"

    def token(self, scope):
        access = []
        if scope.startswith("repository:"):
            _, name, actions = scope.split(":", 2)
            access.append({"type": "repository", "name": name, "actions": actions.split(",")})
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": self.user, "aud": self.service, "exp": now + 600,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        sig = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing + "." + b64url(sig)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Registry:
    """docker-registry serving on 127.0.0.1:<port> from a directory of the test."""

    def __init__(self, directory, *, tls=False, token=None, htpasswd=None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.tls = tls
        self.ca = None
        http_cfg = {"addr": self.host}
        if tls:
            cert, key, _, _ = make_cert(self.dir / "tls")
            self.ca = cert
            http_cfg["tls"] = {"certificate": str(cert), "key": str(key)}
        config = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
                  "storage": {"filesystem": {"rootdirectory": str(self.dir / "data")},
                              "delete": {"enabled": True}},
                  "http": http_cfg}
        if token:
            config["auth"] = {"token": {"realm": token.realm, "service": token.service,
                                        "issuer": token.issuer, "rootcertbundle": str(token.cert_path)}}
        if htpasswd:
            path = self.dir / "htpasswd"
            user, password = htpasswd
            out = subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                                 capture_output=True, text=True).stdout
            path.write_text(out)
            config["auth"] = {"htpasswd": {"realm": "isola-test", "path": str(path)}}
        cfg = self.dir / "config.yml"
        cfg.write_text(json.dumps(config))  # YAML is a superset of JSON
        self.log = open(self.dir / "registry.log", "wb")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self._wait()

    @property
    def url(self):
        return ("https" if self.tls else "http") + "://" + self.host

    def _wait(self):
        ctx = ssl._create_unverified_context()
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited: " + (self.dir / "registry.log").read_text())
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=2, context=ctx)
                return
            except urllib.error.HTTPError:
                return  # 401: up, wants auth
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not come up")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def skopeo(*args, check=True):
    res = subprocess.run(["skopeo", "--insecure-policy", *map(str, args)], capture_output=True, text=True,
                         timeout=300)
    if check and res.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(map(str, args))} failed:\n{res.stderr}")
    return res


def push_layout(layout, dest, *extra):
    """Copies an OCI layout (all of an index's images) to docker://dest."""
    skopeo("copy", "--all", "--dest-tls-verify=false", *extra, f"oci:{layout}", f"docker://{dest}")


def write_layout(files, directory):
    """Writes imagegen's {path: bytes} archive form as a directory."""
    directory = Path(directory)
    for path, data in files.items():
        if data is None:
            (directory / path).mkdir(parents=True, exist_ok=True)
        else:
            (directory / path).parent.mkdir(parents=True, exist_ok=True)
            (directory / path).write_bytes(data)
    return directory


class Proxy:
    """Forwards HTTP to a plain-HTTP registry. `corrupt` names blob digests
    whose bodies get one byte flipped; `rate` (bytes/s) slows blob bodies.
    Every request is recorded as [method, path, range header, status, bytes
    of body sent]."""

    def __init__(self, upstream_host):
        self.upstream = upstream_host
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.corrupt = set()
        self.rate = None
        self.ignore_range = False  # as a registry that does not do Range
        self.log = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def forward(self):
                entry = [self.command, self.path, self.headers.get("Range"), None, 0]
                with proxy.lock:
                    proxy.log.append(entry)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                drop = ("host", "connection") + (("range",) if proxy.ignore_range else ())
                headers = {k: v for k, v in self.headers.items() if k.lower() not in drop}
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read() if self.command != "HEAD" else b""
                conn.close()
                entry[3] = resp.status
                blob = "/blobs/sha256:" in self.path and self.command == "GET" and resp.status in (200, 206)
                if blob and self.path.rsplit("/", 1)[1] in proxy.corrupt and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                length = resp.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length)
                self.end_headers()
                step = max(1, proxy.rate // 10) if blob and proxy.rate else len(data) or 1
                try:
                    for i in range(0, len(data), step):
                        self.wfile.write(data[i:i + step])
                        self.wfile.flush()
                        with proxy.lock:
                            entry[4] += len(data[i:i + step])
                        if blob and proxy.rate:
                            time.sleep(0.1)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = forward

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def blob_requests(self, digest):
        with self.lock:
            return [list(e) for e in self.log if e[0] == "GET" and e[1].endswith("/blobs/" + digest)]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
