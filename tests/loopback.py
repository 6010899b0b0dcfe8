"""A real JSON-over-HTTP server on 127.0.0.1, the base of the tests' fake OpenAI-compatible servers."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional


class LoopbackServer:
    """Serves POST requests with self.handle(path, body, headers) -> (status, headers, reply), and GET
    requests with self.handle_get(path, headers).

    A JSON body arrives decoded, any other (a multipart upload) as bytes. The reply is a JSON value or
    bytes; status 0 drops the connection without an answer.
    """

    def __init__(self) -> None:
        self._server: Optional[ThreadingHTTPServer] = None

    def handle(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        raise NotImplementedError

    def handle_get(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        return 404, {}, {"error": {"message": f"no route GET {path}", "type": "not_found"}}

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self, port: int = 0):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                try:
                    raw = self.rfile.read(length)
                    json_body = "json" in (self.headers.get("content-type") or "application/json")
                    body = (json.loads(raw) if raw else None) if json_body else raw
                except (ValueError, OSError):  # a client killed in the middle of its request
                    self.close_connection = True
                    return
                self.reply(*fake.handle(self.path, body, {k.lower(): v for k, v in self.headers.items()}))

            def do_GET(self) -> None:
                self.reply(*fake.handle_get(self.path, {k.lower(): v for k, v in self.headers.items()}))

            def reply(self, status: int, headers: dict[str, str], reply: Any) -> None:
                if status == 0:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                if "content-type" not in headers:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024  # the default backlog of 5 resets connections under load
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client killed mid-request (the crash tests do it on purpose)

        self._server = Server(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
