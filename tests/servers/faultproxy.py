"""A tiny HTTP proxy for the sync tests: forwards every request to UPSTREAM and answers every
Nth one itself with an error instead (503 Slow Down, or 500), so the client's retries are
exercised against a real server. Writes one line per request (`METHOD PATH STATUS`) to LOG.

    faultproxy.py PORT UPSTREAM_HOST:PORT EVERY_NTH STATUS LOG

EVERY_NTH = 0 injects nothing (a pass-through that only counts requests). Prints "ready"
when listening.
"""
import http.client
import http.server
import sys
import threading

port, upstream, every, status, log_path = sys.argv[1:]
every, status = int(every), int(status)
host, upstream_port = upstream.rsplit(":", 1)
lock = threading.Lock()
count = 0
log = open(log_path, "a", buffering=1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        global count
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with lock:
            count += 1
            fail = every > 0 and count % every == 0
        if fail:
            payload = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code><Message>injected</Message></Error>"
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            log.write(f"{self.command} {self.path} {status} injected\n")
            return
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
        log.write(f"{self.command} {self.path} {response.status}\n")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
server.daemon_threads = True
print("ready", flush=True)
server.serve_forever()
