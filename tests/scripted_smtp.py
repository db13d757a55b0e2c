"""A scripted SMTP server on loopback, for the replies aiosmtpd will not give."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Answer = Callable[[str], tuple[str, bool]]  # a command line -> (reply, hang up after it)


class _Scripted(socketserver.StreamRequestHandler):
    """A scripted SMTP server on loopback for what aiosmtpd will not do: its ``server`` says
    which extensions to offer, how to answer MAIL and RCPT (a reply, and whether to hang up
    after it), and how long to wait before answering the end of a message."""

    def handle(self) -> None:
        script = self.server.script  # type: ignore[attr-defined]
        script["connections"] += 1
        self.wfile.write(b"220 scripted ESMTP\r\n")
        rcpt_ok = False
        for raw in self.rfile:
            line = raw.decode("utf-8").strip()
            script["commands"].append(line)
            verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
            hang_up = False
            if verb == "EHLO":
                reply = "\r\n".join(f"250-{ext}" for ext in ["scripted", *script["extensions"][:-1]])
                reply += f"\r\n250 {script['extensions'][-1]}" if script["extensions"] else "\r\n250 OK"
            elif verb in ("MAIL", "RCPT"):
                reply, hang_up = script[verb.lower()](line)
                rcpt_ok = rcpt_ok or (verb == "RCPT" and reply.startswith("250"))
            elif verb == "DATA":
                self.wfile.write(b"354 go ahead\r\n")
                script["bodies"].append(b"".join(iter(self.rfile.readline, b".\r\n")))
                time.sleep(script["final_delay"])
                reply = "250 queued" if rcpt_ok else "554 no valid recipients"
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                reply = "250 OK"
            self.wfile.write(reply.encode() + b"\r\n")
            if hang_up:
                return


@contextmanager
def scripted(extensions: list[str], mail: Answer | None = None, rcpt: Answer | None = None,
             final_delay: float = 0.0) -> Iterator[dict]:
    """Serve until the block ends; the dict it gives counts connections and keeps commands and bodies."""
    script = {"extensions": extensions, "mail": mail or (lambda line: ("250 OK", False)),
              "rcpt": rcpt or (lambda line: ("250 OK", False)), "final_delay": final_delay,
              "connections": 0, "commands": [], "bodies": []}
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Scripted) as server:
        server.daemon_threads = True
        server.script = script  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        script["host"], script["port"] = server.server_address
        try:
            yield script
        finally:
            server.shutdown()


def peer(script: dict):
    """Something with the ``host`` and ``port`` a Mailbox needs."""
    return type("Peer", (), {"host": script["host"], "port": script["port"]})
