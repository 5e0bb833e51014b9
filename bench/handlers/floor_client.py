"""The floor: a client that speaks the Runtime API's HTTP loop and does nothing else.

It does not decode events or encode results; an `echo` handler name posts the event bytes back,
anything else posts `null`. Whatever a runtime costs above this is the runtime's own work.
"""

import os
import socket
import sys

HEAD_END = b"\r\n\r\n"


def main() -> None:
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
    echo = sys.argv[1].endswith(".echo")
    connection = socket.create_connection((host, int(port)))
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()

    def read_message() -> tuple[bytes, bytes]:
        while HEAD_END not in buffer:
            buffer.extend(connection.recv(1 << 20))
        end = buffer.index(HEAD_END)
        head = bytes(buffer[:end])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        total = end + 4 + length
        while len(buffer) < total:
            buffer.extend(connection.recv(1 << 20))
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        return head, body

    while True:
        connection.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: runtime\r\n\r\n")
        head, body = read_message()
        request_id = b""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"lambda-runtime-aws-request-id":
                request_id = value.strip()
        result = body if echo else b"null"
        connection.sendall(
            b"POST /2018-06-01/runtime/invocation/" + request_id + b"/response HTTP/1.1\r\nHost: runtime\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + str(len(result)).encode() + HEAD_END + result
        )
        read_message()


if __name__ == "__main__":
    main()
