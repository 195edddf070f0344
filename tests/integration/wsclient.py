"""A minimal WebSocket client (RFC 6455, client side) for protocol tests: enough to speak
lanesync's peer protocol badly on purpose. Standard library only."""
import base64
import json
import os
import socket
import struct



def frame_header(opcode, n, fin=True, mask=b"\0\0\0\0"):
    """A masked client frame header announcing `n` payload bytes, ending with `mask`."""
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        hdr = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return hdr + mask

class Closed(Exception):
    def __init__(self, code, reason):
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


class WsClient:
    def __init__(self, port, path="/v1/peer", timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            head += chunk
        self.status_line = head.split(b"\r\n")[0].decode()
        self.buf = head.split(b"\r\n\r\n", 1)[1]
        if " 101 " not in self.status_line:
            raise ConnectionError(self.status_line)

    def _frame(self, opcode, payload, fin=True):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return frame_header(opcode, len(payload), fin, mask) + masked

    def send_text(self, text):
        self.sock.sendall(self._frame(0x1, text.encode() if isinstance(text, str) else text))

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def send_binary(self, data):
        self.sock.sendall(self._frame(0x2, data))

    def send_raw(self, data):
        self.sock.sendall(data)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """Next text message as a dict; raises Closed on a close frame."""
        while True:
            b0, b1 = self._read(2)
            op = b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            if op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise Closed(code, payload[2:].decode(errors="replace"))
            if op == 0x9:  # ping -> pong
                self.sock.sendall(self._frame(0xA, payload))
                continue
            if op == 0x1:
                return json.loads(payload)

    def expect_close(self):
        try:
            while True:
                self.recv()
        except Closed as c:
            return c

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
