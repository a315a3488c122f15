"""A small ADB daemon for the tests: a real protocol peer on 127.0.0.1, not a mock.

It speaks what adbd speaks to a client over TCP (AOSP packages/modules/adb): CNXN; AUTH with a
token, RSA signature verification against the keys it trusts and the public-key path (a new key
is trusted only if ``accept_new_keys``, as a phone's user taps "Allow"); OPEN/OKAY/WRTE/CLSE
streams with per-write acknowledgement; ``shell:`` (protocol v1) and ``shell,v2,...:`` (v2
framing with stdout, stderr and the exit code) run through ``sh`` on this machine; ``exec:``;
and the sync service (STAT, LIST, SEND, RECV, DATA, DONE, QUIT). Both adb-shell and Debian's
``adb`` client drive it in the tests.

The device it stands for is this machine, with the Android property service answered by a
``getprop`` on the shell's PATH (from ``props``); or, with ``emulate_arm64``, an emulated arm64-v8a
device (an Android emulator's properties: ``ro.kernel.qemu=1``) whose shell runs aarch64
programs under qemu-user: the kernel hands them to qemu (binfmt_misc, registered by `make
arm64-tools`), which finds the aarch64 C library and loader in Debian's cross sysroot. Faults for
the tests, each fired once: ``drop_after_push_bytes`` cuts the connection once that many bytes of pushed file data arrived;
``drop_when(command)`` is asked every 50 ms while a shell command runs and cuts the connection
when it answers True (as a pulled cable or lost Wi-Fi: the command is ended, as adbd ends it).
"""
from __future__ import annotations

import os
import queue
import shlex
import socket
import stat
import tempfile
import threading
from pathlib import Path

from . import wire
from .services import run_shell, run_sync

DEFAULT_PROPS = {
    "ro.product.manufacturer": "mobileprune", "ro.product.model": "loopback-adbd",
    "ro.product.name": "loopback", "ro.product.device": "loopback", "ro.soc.model": "host-cpu",
    "ro.product.cpu.abi": "x86_64", "ro.build.version.release": "14", "ro.build.version.sdk": "34",
}
FEATURES = ("shell_v2", "cmd")
ARM64_EMULATED = {"ro.product.manufacturer": "qemu", "ro.product.model": "emulated-arm64",
                  "ro.soc.model": "qemu-aarch64", "ro.product.cpu.abi": "arm64-v8a", "ro.product.cpu.abilist": "arm64-v8a", "ro.kernel.qemu": "1"}
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"  # Debian's libc6-arm64-cross (with g++-aarch64-linux-gnu)
BINFMT_AARCH64 = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


class Stream:
    """One end of an ADB stream on the daemon's side: ``local`` is our id, ``remote`` the client's."""

    def __init__(self, conn: Connection, local: int, remote: int) -> None:
        self.conn, self.local, self.remote = conn, local, remote
        self.inbox: queue.Queue = queue.Queue()  # bytes from the client; None once it closed
        self._acked = threading.Event()
        self._acked.set()
        self.closed = threading.Event()
        self._buffer = b""

    def write(self, data: bytes) -> None:
        """WRTE in pieces the client accepts, each after the previous one was acknowledged."""
        for start in range(0, len(data), self.conn.max_payload):
            while not self._acked.wait(0.1):
                if self.closed.is_set() or self.conn.dead.is_set():
                    raise ConnectionError("stream closed")
            if self.closed.is_set():
                raise ConnectionError("stream closed")
            self._acked.clear()
            self.conn.send(wire.WRTE, self.local, self.remote, data[start:start + self.conn.max_payload])

    def acknowledged(self) -> None:
        self._acked.set()

    def read_some(self) -> bytes | None:
        """The next piece the client wrote, or None once it closed the stream."""
        if self._buffer:
            data, self._buffer = self._buffer, b""
            return data
        return self.inbox.get()

    def read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            piece = self.inbox.get()
            if piece is None:
                raise ConnectionError("stream closed by the client")
            self._buffer += piece
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.conn.send(wire.CLSE, self.local, self.remote)
            self.conn.streams.pop(self.local, None)


class Connection:
    def __init__(self, daemon: AdbDaemon, sock: socket.socket) -> None:
        self.daemon, self.sock = daemon, sock
        self.streams: dict[int, Stream] = {}
        self.dead = threading.Event()
        self.max_payload = wire.MAX_PAYLOAD
        self.version = wire.A_VERSION_MIN
        self.pushed_bytes = 0
        self._send_lock = threading.Lock()
        self._next_id = 1

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        with self._send_lock:
            if self.dead.is_set():
                raise ConnectionError("connection dropped")
            self.sock.sendall(wire.pack(command, arg0, arg1, data))

    def drop(self) -> None:
        """Cut the connection as a pulled cable or a lost Wi-Fi does."""
        self.dead.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for stream in list(self.streams.values()):
            stream.closed.set()
            stream.inbox.put(None)

    def serve(self) -> None:
        try:
            self._authenticate()
            while not self.dead.is_set():
                command, arg0, arg1, data = wire.read_message(self.sock, self._check_sums)
                self._dispatch(command, arg0, arg1, data)
        except (ConnectionError, OSError, wire.ProtocolError):
            pass
        finally:
            if not self.dead.is_set():
                self.drop()

    @property
    def _check_sums(self) -> bool:
        return self.version < wire.A_VERSION_SKIP_CHECKSUM

    def _authenticate(self) -> None:
        command, version, max_payload, banner = wire.read_message(self.sock, True)
        if command != wire.CNXN:
            raise wire.ProtocolError(f"expected CNXN, got {wire.NAMES.get(command, command)}")
        self.version = min(version, wire.A_VERSION_SKIP_CHECKSUM)
        self.max_payload = min(max_payload, wire.MAX_PAYLOAD)
        self.daemon.client_banners.append(banner.rstrip(b"\0").decode(errors="replace"))
        if not self.daemon.require_auth:
            return self._connected()
        token = os.urandom(wire.TOKEN_SIZE)
        self.send(wire.AUTH, wire.AUTH_TOKEN, 0, token)
        while True:
            command, kind, _, data = wire.read_message(self.sock, self._check_sums)
            if command != wire.AUTH:
                raise wire.ProtocolError("a message before authentication")
            if kind == wire.AUTH_SIGNATURE:
                if any(wire.verify(key, token, data) for key in self.daemon.trusted_keys()):
                    return self._connected()
                token = os.urandom(wire.TOKEN_SIZE)  # as adbd: a new token for the next key
                self.send(wire.AUTH, wire.AUTH_TOKEN, 0, token)
            elif kind == wire.AUTH_RSAPUBLICKEY:
                key = wire.decode_public_key(data)
                if self.daemon.accept_new_keys:
                    self.daemon.trust(key)
                    return self._connected()
                self.daemon.refused_keys.append(key)  # the prompt on the phone is left unanswered
            else:
                raise wire.ProtocolError(f"AUTH type {kind}")

    def _connected(self) -> None:
        props = self.daemon.props
        banner = (f"device::ro.product.name={props['ro.product.name']};ro.product.model={props['ro.product.model']};"
                  f"ro.product.device={props['ro.product.device']};features={','.join(FEATURES)}")
        self.send(wire.CNXN, wire.A_VERSION_SKIP_CHECKSUM, wire.MAX_PAYLOAD, banner.encode())

    def _dispatch(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == wire.OPEN:
            self._open(arg0, data.rstrip(b"\0").decode())
        elif command == wire.WRTE:
            stream = self.streams.get(arg1)
            if stream is None:
                return self.send(wire.CLSE, 0, arg0)
            stream.inbox.put(data)
            self.send(wire.OKAY, stream.local, stream.remote)
        elif command == wire.OKAY:
            if arg1 in self.streams:
                self.streams[arg1].acknowledged()
        elif command == wire.CLSE:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream.inbox.put(None)
                stream.close()
        elif command == wire.CNXN:  # a client reconnecting on the same socket: start over
            self._connected()

    def _open(self, remote: int, destination: str) -> None:
        service, _, argument = destination.partition(":")
        name, *options = service.split(",")
        handlers = {"shell": lambda s: run_shell(s, argument, options, self.daemon),
                    "exec": lambda s: run_shell(s, argument, ["raw"], self.daemon),
                    "sync": lambda s: run_sync(s, self.daemon)}
        if name not in handlers or remote == 0:
            return self.send(wire.CLSE, 0, remote)
        local, self._next_id = self._next_id, self._next_id + 1
        stream = Stream(self, local, remote)
        self.streams[local] = stream
        self.send(wire.OKAY, local, remote)
        self.daemon.opened.append(destination)

        def serve_stream() -> None:
            try:
                handlers[name](stream)
            except (ConnectionError, OSError):
                pass
            finally:
                if not self.dead.is_set():
                    try:
                        stream.close()
                    except (ConnectionError, OSError):
                        pass

        threading.Thread(target=serve_stream, daemon=True, name=f"adbd-{name}-{local}").start()


class AdbDaemon:
    """``with AdbDaemon() as daemon: ... daemon.port``: listens on 127.0.0.1 on a free port
    outside 5555-5585 (the range adb servers scan for emulators)."""

    def __init__(self, *, require_auth: bool = True, accept_new_keys: bool = True, trusted: tuple = (),
                 props: dict | None = None, drop_after_push_bytes: int | None = None,
                 drop_when=None, emulate_arm64: bool = False) -> None:
        if emulate_arm64 and not (BINFMT_AARCH64.is_file() and "enabled" in BINFMT_AARCH64.read_text()):
            raise RuntimeError(f"aarch64 programs are not handed to qemu on this machine ({BINFMT_AARCH64} is not "
                               "registered): `make arm64-tools` registers it as root")
        self.emulate_arm64 = emulate_arm64
        self.require_auth, self.accept_new_keys = require_auth, accept_new_keys
        self._trusted = list(trusted)
        self.refused_keys: list = []
        self.client_banners: list[str] = []
        self.opened: list[str] = []  # services opened, in order
        self.commands: list[str] = []  # shell commands run, in order
        self.props = {**DEFAULT_PROPS, **(ARM64_EMULATED if emulate_arm64 else {}), **(props or {})}
        self.drop_after_push_bytes, self.drop_when = drop_after_push_bytes, drop_when
        self.drops = 0  # connections cut by a fault
        self.connections: list[Connection] = []
        self._lock = threading.Lock()
        self._bin = Path(tempfile.mkdtemp(prefix="adbd-bin-"))
        self._write_getprop()
        self.sock = self._listen()
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="adbd-accept")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def trusted_keys(self) -> list:
        with self._lock:
            return list(self._trusted)

    def trust(self, key) -> None:
        with self._lock:
            self._trusted.append(key)

    def shell_env(self) -> dict:
        env = dict(os.environ, PATH=f"{self._bin}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        if self.emulate_arm64:
            env["QEMU_LD_PREFIX"] = AARCH64_SYSROOT
        return env

    def _write_getprop(self) -> None:
        """Android's getprop: all properties as '[key]: [value]', or one value."""
        lines = ["#!/bin/sh", 'if [ $# -eq 0 ]; then', "cat <<'EOF'"]
        lines += [f"[{k}]: [{v}]" for k, v in sorted(self.props.items())]
        lines += ["EOF", "exit 0", "fi", 'case "$1" in']
        lines += [f"  {shlex.quote(k)}) echo {shlex.quote(str(v))} ;;" for k, v in sorted(self.props.items())]
        lines += ["  *) echo ;;", "esac"]
        path = self._bin / "getprop"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    @staticmethod
    def _listen() -> socket.socket:
        for _ in range(50):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            if not 5555 <= sock.getsockname()[1] <= 5585:
                sock.listen(8)
                return sock
            sock.close()
        raise RuntimeError("no free port outside 5555-5585")

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.sock.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(self, sock)
            self.connections.append(conn)
            threading.Thread(target=conn.serve, daemon=True, name="adbd-conn").start()

    def drop_all(self) -> None:
        for conn in self.connections:
            if not conn.dead.is_set():
                conn.drop()

    def start(self) -> AdbDaemon:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
        self.drop_all()
        for f in self._bin.iterdir():
            f.unlink()
        self._bin.rmdir()

    def __enter__(self) -> AdbDaemon:  # noqa: PYI034 - the class is not subclassed
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

