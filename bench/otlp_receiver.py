"""A tiny OTLP/HTTP receiver for `python -m bench protocols`, run as its own process.

    python -m bench.otlp_receiver --port PORT [--delay SECONDS]

`POST /v1/logs` decodes the `ExportLogsServiceRequest` and keeps each record's body, then
answers 200 with an empty `ExportLogsServiceResponse` (which serializes to no bytes) over a
kept-alive HTTP/1.1 connection. `GET /messages` answers the bodies received since the last
`GET /messages` as a JSON list (and forgets them). Prints `READY` once it listens. With
`--delay`, each POST is answered that many seconds after it arrived (a distant collector).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"


class Receiver:
    def __init__(self, delay: float = 0.0) -> None:
        self.bodies: list[str] = []
        self.delay = delay

    def take(self, body: bytes) -> None:
        request = ExportLogsServiceRequest.FromString(body)
        bodies = self.bodies
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                bodies.extend(record.body.string_value for record in scope_logs.log_records)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if request_line.startswith(b"POST"):
                    self.take(body)
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    writer.write(OK)
                else:
                    answer = json.dumps(self.bodies).encode()
                    self.bodies = []
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
                    )
                await writer.drain()
        writer.close()


async def main(port: int, delay: float = 0.0) -> None:
    receiver = Receiver(delay)
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", port, limit=1 << 20)
    print("READY", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.otlp_receiver", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.delay))
