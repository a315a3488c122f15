"""The daemon's services: shell (v1 and v2) through ``sh``, and the sync service (file transfer)."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import threading
from pathlib import Path

from . import wire


def run_shell(stream, command: str, options: list[str], daemon) -> None:
    """``shell:CMD`` (v1: stdout and stderr as one raw stream, the end of the stream is the end
    of the command, no exit code) or ``shell,v2,...:CMD`` (packets: stdout, stderr, then the exit
    code). An empty command is an interactive shell reading the client's stdin."""
    v2 = "v2" in options
    daemon.commands.append(command)
    argv = ["sh", "-c", command] if command else ["sh"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE if v2 else subprocess.STDOUT, env=daemon.shell_env(),
                            start_new_session=True)
    lock = threading.Lock()

    def pump(pipe, kind: int) -> None:
        try:
            for chunk in iter(lambda: os.read(pipe.fileno(), 64 * 1024), b""):
                with lock:
                    stream.write(wire.shell_packet(kind, chunk) if v2 else chunk)
        except (ConnectionError, OSError, ValueError):
            pipe.close()  # the client is gone: the command's next write gets SIGPIPE, as under adbd

    pumps = [threading.Thread(target=pump, args=(proc.stdout, wire.SHELL_STDOUT), daemon=True)]
    if v2:
        pumps.append(threading.Thread(target=pump, args=(proc.stderr, wire.SHELL_STDERR), daemon=True))
    feeder = threading.Thread(target=_feed_stdin, args=(stream, proc, v2), daemon=True)
    for t in (*pumps, feeder):
        t.start()
    try:
        while proc.poll() is None:
            if stream.closed.wait(0.05):  # the client went away: end the command, as adbd does
                os.killpg(proc.pid, signal.SIGHUP)
                break
            if daemon.drop_when is not None and daemon.drop_when(command):
                daemon.drop_when = None
                daemon.drops += 1
                stream.conn.drop()
        proc.wait()
        for t in pumps:
            t.join()
        if v2 and not stream.closed.is_set():
            with lock:
                stream.write(wire.shell_packet(wire.SHELL_EXIT, bytes([proc.returncode & 0xFF])))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _feed_stdin(stream, proc: subprocess.Popen, v2: bool) -> None:
    try:
        while True:
            if not v2:
                data = stream.read_some()
                if data is None:
                    break
                proc.stdin.write(data)
                proc.stdin.flush()
                continue
            kind, length = wire.SHELL_HEADER.unpack(stream.read_exact(wire.SHELL_HEADER.size))
            data = stream.read_exact(length)
            if kind == wire.SHELL_STDIN:
                proc.stdin.write(data)
                proc.stdin.flush()
            elif kind == wire.SHELL_CLOSE_STDIN:
                break
    except (ConnectionError, BrokenPipeError, OSError):
        pass
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass


def run_sync(stream, daemon) -> None:
    """Requests until QUIT or the end of the stream; each is an id and a length then a path."""
    while True:
        try:
            request, length = wire.SYNC_REQUEST.unpack(stream.read_exact(wire.SYNC_REQUEST.size))
        except ConnectionError:
            return
        if request == b"QUIT":
            return
        path = stream.read_exact(length).decode()
        handler = {b"STAT": _stat, b"LIST": _list, b"SEND": _send, b"RECV": _recv}.get(request)
        if handler is None:
            return _fail(stream, f"unknown sync request {request!r}")
        handler(stream, path, daemon)


def _fail(stream, message: str) -> None:
    data = message.encode()
    stream.write(wire.SYNC_REQUEST.pack(b"FAIL", len(data)) + data)


def _stat(stream, path: str, daemon) -> None:
    try:
        st = os.stat(path)
        reply = wire.SYNC_STAT.pack(b"STAT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
    except OSError:
        reply = wire.SYNC_STAT.pack(b"STAT", 0, 0, 0)  # v1 STAT: all zero for a missing path
    stream.write(reply)


def _list(stream, path: str, daemon) -> None:
    out = []
    try:
        for entry in os.scandir(path):
            st = entry.stat(follow_symlinks=False)
            name = entry.name.encode()
            out.append(wire.SYNC_DENT.pack(b"DENT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(name))
                       + name)
    except OSError:
        pass
    stream.write(b"".join(out) + wire.SYNC_DENT.pack(b"DONE", 0, 0, 0, 0))


def _send(stream, spec: str, daemon) -> None:
    """SEND "path,mode", then DATA pieces and DONE with the mtime; OKAY or FAIL. A transfer that
    fails part-way leaves no file behind (as adbd)."""
    path, _, mode = spec.rpartition(",")
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = open(target, "wb")  # noqa: SIM115 - closed, or removed, in the finally below
    except OSError as exc:
        handle, error = None, f"cannot write {path}: {exc.strerror}"
    ok = False
    try:
        while True:
            kind, value = wire.SYNC_REQUEST.unpack(stream.read_exact(wire.SYNC_REQUEST.size))
            if kind == b"DATA":
                if value > wire.SYNC_DATA_MAX:
                    raise ConnectionError(f"DATA of {value} bytes")
                data = stream.read_exact(value)
                if handle is not None:
                    handle.write(data)
                stream.conn.pushed_bytes += value
                limit = daemon.drop_after_push_bytes
                if limit is not None and stream.conn.pushed_bytes >= limit:
                    daemon.drop_after_push_bytes = None
                    daemon.drops += 1
                    stream.conn.drop()
                    raise ConnectionError("dropped mid-push")
            elif kind == b"DONE":
                break
            else:
                raise ConnectionError(f"unexpected {kind!r} in a SEND")
        if handle is None:
            return _fail(stream, error)
        handle.close()
        os.chmod(target, stat.S_IMODE(int(mode)) if mode.isdigit() else 0o644)  # clients send it in decimal
        os.utime(target, (value, value))
        ok = True
        stream.write(wire.SYNC_REQUEST.pack(b"OKAY", 0))
    finally:
        if handle is not None and not handle.closed:
            handle.close()
        if not ok and handle is not None:
            target.unlink(missing_ok=True)


def _recv(stream, path: str, daemon) -> None:
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(wire.SYNC_DATA_MAX):
                stream.write(wire.SYNC_REQUEST.pack(b"DATA", len(chunk)) + chunk)
    except OSError as exc:
        return _fail(stream, f"cannot read {path}: {exc.strerror}")
    stream.write(wire.SYNC_REQUEST.pack(b"DONE", 0))
