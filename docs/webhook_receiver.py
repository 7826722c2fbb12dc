"""A webhook receiver to try GridLink's webhooks with (docs/webhooks.md): listens on
127.0.0.1:8099, verifies each delivery's signature and prints the event.

    python3 docs/webhook_receiver.py SECRET [PORT]

Standard library only; it shows what a receiver must do: verify the signature over the raw
body, refuse a stale timestamp, answer 2xx quickly, and ignore an event id it has seen.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import sys
import time

REPLAY_WINDOW_S = 300


def verify(secret: str, header: str, body: bytes, window_s: int = REPLAY_WINDOW_S) -> bool:
    """True when ``X-GridLink-Signature`` (``t=<unix>,v1=<hex>``) signs ``body``."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > window_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


class Receiver(http.server.BaseHTTPRequestHandler):
    secret = ""
    seen: set[str] = set()  # event ids processed (at least once: a repeat is ignored)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not verify(self.secret, self.headers.get("X-GridLink-Signature", ""), body):
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(204)
        self.end_headers()
        event = json.loads(body)
        if event["id"] in self.seen:
            return
        self.seen.add(event["id"])
        print(event["type"], json.dumps(event["data"]), flush=True)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: only the events are printed


if __name__ == "__main__":
    Receiver.secret = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8099
    print(f"listening on http://127.0.0.1:{port}/ (Ctrl-C stops)", flush=True)
    http.server.HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
