"""The least a Python runtime does before its first request: open a socket and send one `GET`."""

import _socket
import os

host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
connection = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
connection.connect((host, int(port)))
connection.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: runtime\r\n\r\n")
connection.recv(1)
