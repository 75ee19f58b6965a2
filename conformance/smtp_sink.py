#!/usr/bin/env python3
"""A real SMTP server for the mail tests: accepts every message and keeps it as files.

    smtp_sink.py PORT OUTDIR      (PORT 0: any free port)

Each message becomes OUTDIR/NNNNNN.eml (the raw RFC 5322 bytes, as received after the DATA
dot-unstuffing) and then OUTDIR/NNNNNN.json ({"mail_from", "rcpt_tos", "eml"}); the JSON is
renamed into place last, so a reader that waits for .json files never sees half a message.
Prints "READY <port>" once listening. Runs until SIGTERM/SIGINT or until stdin closes (so it
dies with the test process that holds the pipe, even one killed with SIGKILL).

No AUTH and no STARTTLS: it listens on 127.0.0.1 only. Not offering STARTTLS is also what lets
a test prove that smtp:// (STARTTLS required) refuses to send in clear text.
"""

import json
import os
import signal
import sys

from aiosmtpd.controller import Controller


class FileHandler:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0  # handlers run on the controller's one event-loop thread

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        stem = os.path.join(self.outdir, f"{self.count:06d}")
        with open(stem + ".eml", "wb") as f:
            f.write(envelope.original_content or b"")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "eml": os.path.basename(stem + ".eml"),
        }
        with open(stem + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(meta, f)
        os.replace(stem + ".json.tmp", stem + ".json")
        return "250 Message accepted for delivery"


class AnyPortController(Controller):
    """Controller that can bind port 0: it learns the real port before start() returns
    (the stock one would probe port 0 to check that the server is up)."""

    async def _bind(self):
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self.port
        )
        self.port = server.sockets[0].getsockname()[1]
        return server

    def _create_server(self):
        return self._bind()


class Stop(Exception):
    pass


def _stop(signum, frame):
    raise Stop()


def main(argv):
    if len(argv) != 3:
        print(f"usage: {argv[0]} PORT OUTDIR", file=sys.stderr)
        return 2
    port, outdir = int(argv[1]), argv[2]
    os.makedirs(outdir, exist_ok=True)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    controller = AnyPortController(FileHandler(outdir), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        print(f"READY {controller.port}", flush=True)
        # Blocks until EOF; a signal interrupts it by raising Stop.
        while sys.stdin.buffer.read(4096):
            pass
    except Stop:
        pass
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
