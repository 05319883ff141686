"""A tiny HTTP proxy for the sync tests: forwards every request to UPSTREAM, and plays a fault
on every Nth one, so the client's retries and checks are exercised against a real server.
Writes one line per request (`METHOD PATH STATUS [injected|corrupted]`) to LOG.

    faultproxy.py PORT UPSTREAM_HOST:PORT EVERY_NTH MODE LOG [LIMIT]

MODE is an HTTP status (503: S3's Slow Down, 500, ...): the Nth request is answered with it
instead of being forwarded; or `corrupt`: the Nth part upload (a PUT with `comp=block`, Azure's
Put Block, or `partNumber=`, S3's Upload Part) is forwarded with one byte of its body flipped,
as a faulty network or disk would; or `region`: every request is answered as S3 answers a
bucket of another region (301 PermanentRedirect, or 400 AuthorizationHeaderMalformed naming the
region to HEAD requests' bodiless 301), which moto does not emulate. EVERY_NTH = 0 injects
nothing (a pass-through that only counts requests). LIMIT: at most that many faults (default:
no limit). Prints "ready" when listening.
"""
import http.client
import http.server
import sys
import threading

port, upstream, every, mode, log_path, *rest = sys.argv[1:]
every = int(every)
limit = int(rest[0]) if rest else None
host, upstream_port = upstream.rsplit(":", 1)
lock = threading.Lock()
count = 0
faults = 0
log = open(log_path, "a", buffering=1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, payload, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def handle_any(self):
        global count, faults
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if mode == "region":
            if self.command == "HEAD":
                self.answer(301, b"", [("x-amz-bucket-region", "eu-west-1")])
            else:
                payload = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AuthorizationHeaderMalformed</Code>"
                           b"<Message>The authorization header is malformed; the region 'us-east-1' is wrong; "
                           b"expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>")
                self.answer(400, payload, [("x-amz-bucket-region", "eu-west-1")])
            log.write(f"{self.command} {self.path} region injected\n")
            return
        part = self.command == "PUT" and bool(body) and ("comp=block&" in self.path + "&" or "partNumber=" in self.path)
        counted = mode != "corrupt" or part
        with lock:
            count += counted
            fault = counted and every > 0 and count % every == 0 and (limit is None or faults < limit)
            faults += fault
        if fault and mode != "corrupt":
            payload = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code><Message>injected</Message></Error>"
            self.answer(int(mode), payload)
            log.write(f"{self.command} {self.path} {mode} injected\n")
            return
        if fault:
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        conn = http.client.HTTPConnection(host, int(upstream_port), timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "transfer-encoding")}
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        self.send_response(response.status, response.reason)
        for k, v in response.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server"):
                self.send_header(k, v)
        # HEAD answers carry the object's length without a body.
        length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length or "0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()
        log.write(f"{self.command} {self.path} {response.status}{' corrupted' if fault else ''}\n")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
server.daemon_threads = True
print("ready", flush=True)
server.serve_forever()
