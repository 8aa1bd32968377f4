"""Fault injection for the tests, against the real servers: a tiny disk, a cutting TCP proxy, a tarpit.

- SmallDisk: a tmpfs of a few MiB mounted by the test (we run as root; the caller skips when mount is refused),
  filled to ENOSPC on demand and freed again.
- CuttingProxy: a TCP relay of our own between a client and a real server (127.0.0.1 only) that can cut both
  sides of the link once the server has sent a given byte pattern (a FETCH response, say) plus a few bytes more.
- Tarpit: accepts connections and then says nothing, ever (an SMTP server that hangs after the TCP handshake).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import threading
from pathlib import Path

from servers import free_port


class SmallDisk:
    """A tmpfs mounted at `path` with `size` bytes; fill() takes every free byte, free() gives them back."""

    def __init__(self, path: Path, size: int = 8 << 20) -> None:
        self.path = path
        self.size = size
        self._filler = path / ".filler"

    def mount(self) -> str:
        """Mount it; returns "" on success or why it could not be mounted."""
        self.path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0700", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
        )
        return "" if proc.returncode == 0 else (proc.stderr.strip() or f"mount exited {proc.returncode}")

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)

    def fill(self) -> None:
        """Write zeros until the file system refuses (ENOSPC): no byte is left for anyone."""
        block = b"\0" * 65536
        with open(self._filler, "ab", buffering=0) as f:
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        f.write(block[:size])
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)

    def available(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize


class CuttingProxy:
    """127.0.0.1:port -> target; cuts the link when the server's bytes contain `pattern` (up to `cuts` times)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.pattern: bytes | None = None
        self.extra = 0
        """Bytes forwarded past the end of the pattern before the cut (part of the response gets through)."""
        self.cuts_left = 0
        self.cut_count = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def cut_on(self, pattern: bytes, *, extra: int = 40, times: int = 1) -> None:
        with self._lock:
            self.pattern, self.extra, self.cuts_left = pattern, extra, times

    def close(self) -> None:
        self._stop.set()
        self._accepting.join(timeout=5)
        self._listener.close()
        for t in self._threads:
            t.join(timeout=5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self.connections += 1
            t = threading.Thread(target=self._relay, args=(client, upstream), daemon=True)
            t.start()
            self._threads.append(t)

    def _take_cut(self, window: bytes) -> int | None:
        """Where to cut in this chunk (index after which nothing more passes), or None."""
        with self._lock:
            if self.pattern is None or self.cuts_left <= 0:
                return None
            at = window.find(self.pattern)
            if at < 0:
                return None
            self.cuts_left -= 1
            self.cut_count += 1
            return at + len(self.pattern) + self.extra

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        tail = b""  # the pattern may straddle two reads
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    dst: socket.socket = key.data
                    data = src.recv(65536)
                    if not data:
                        return
                    if src is upstream:
                        window = tail + data
                        cut = self._take_cut(window)
                        if cut is not None:
                            dst.sendall(window[len(tail) : max(len(tail), cut)])
                            return  # both sides closed below, mid-response
                        tail = window[-256:]
                    dst.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


class Tarpit:
    """Accepts TCP connections on 127.0.0.1 and never answers; counts them; close() drops them all."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)  # read nothing, write nothing: the client waits for a greeting forever

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for conn in self._held:
            conn.close()
