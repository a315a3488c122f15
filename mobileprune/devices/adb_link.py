"""A connection to an Android device over ADB: our TCP transport, the user's adb key, shell
commands with exit codes, pushes that skip files already there, pulls, and clear errors.

Built on adb-shell (pure Python: no Android SDK needed) with two things of our own:
- ``SendAllTcpTransport``: adb-shell's TcpTransport sends without TCP_NODELAY and ignores
  partial writes (``socket.send``'s return value): a 3 MB push took 65.8 s through it, and a
  partial write under load would corrupt the stream (adb-shell issue #205 looks like this).
  Ours sets TCP_NODELAY, sends until every byte is out, and reports a closed peer at once
  instead of waiting for a read timeout.
- exit codes: adb-shell's shell returns output only, so every command ends with an exit marker.
"""
from __future__ import annotations

import hashlib
import os
import re
import select
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from adb_shell import exceptions as adb_errors
from adb_shell.transport.tcp_transport import TcpTransport

from .runner import RunnerError

EXIT_MARKER = "__MOBILEPRUNE_EXIT__="
# Everything adb-shell and the socket raise when the link goes away mid-command.
LINK_ERRORS = (OSError, ConnectionError, adb_errors.TcpTimeoutException, adb_errors.AdbConnectionError,
               adb_errors.InvalidResponseError, adb_errors.InvalidCommandError, adb_errors.InvalidChecksumError,
               adb_errors.AdbTimeoutError, adb_errors.PushFailedError, adb_errors.UsbReadFailedError,
               adb_errors.UsbWriteFailedError)


class DeviceUnauthorized(RunnerError):
    """The phone has not accepted this computer's adb key."""


class DeviceDisconnected(RunnerError):
    """The link to the device dropped while a command or a transfer ran."""


class SendAllTcpTransport(TcpTransport):
    def connect(self, transport_timeout_s):
        super().connect(transport_timeout_s)
        self._connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def bulk_write(self, data, transport_timeout_s):
        view, sent = memoryview(data), 0
        deadline = None if transport_timeout_s is None else time.monotonic() + transport_timeout_s
        while sent < len(view):
            wait = None if deadline is None else max(deadline - time.monotonic(), 0)
            _, writable, _ = select.select([], [self._connection], [], wait)
            if not writable:
                raise adb_errors.TcpTimeoutException(
                    f"sending to {self._host}:{self._port} timed out after {transport_timeout_s} s "
                    f"({sent} of {len(view)} bytes sent)")
            try:
                sent += self._connection.send(view[sent:])
            except BlockingIOError:
                continue
        return sent

    def bulk_read(self, numbytes, transport_timeout_s):
        data = super().bulk_read(numbytes, transport_timeout_s)
        if not data:  # readable and empty: the peer closed the connection
            raise ConnectionResetError(f"{self._host}:{self._port} closed the connection")
        return data


@dataclass(frozen=True)
class Address:
    """``adb:HOST:PORT`` (TCP, e.g. a phone with wireless debugging) or ``adb:SERIAL`` (USB)."""

    text: str
    host: str | None = None
    port: int | None = None
    serial: str | None = None

    @classmethod
    def parse(cls, text: str) -> Address:
        if not text.startswith("adb:") or text == "adb:":
            raise RunnerError(f"bad device {text!r}: adb:SERIAL (USB) or adb:HOST:PORT (TCP)")
        rest = text[4:]
        match = re.fullmatch(r"(.+):(\d+)", rest)
        if match:
            return cls(text, host=match.group(1).strip("[]"), port=int(match.group(2)))
        return cls(text, serial=rest)


def default_key_path() -> Path:
    """Where adb keeps the user's key; ``ADB_VENDOR_KEYS`` aside, adb uses this one too."""
    return Path(os.path.expanduser("~")) / ".android" / "adbkey"


def load_signer(key_path: Path):
    """The user's adb key, made there if absent (as adb does on first use)."""
    from adb_shell.auth.keygen import keygen
    from adb_shell.auth.sign_cryptography import CryptographySigner

    key_path = Path(key_path)
    if not key_path.is_file():
        key_path.parent.mkdir(parents=True, exist_ok=True)
        keygen(str(key_path))
        key_path.chmod(0o600)
    return CryptographySigner(str(key_path))


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class AdbLink:
    """One device's connection. Not thread-safe: one per device, one thread each."""

    def __init__(self, address: str, key_path=None, auth_timeout_s: float = 20.0,
                 transport_timeout_s: float = 30.0) -> None:
        self.address = Address.parse(address)
        self.key_path = Path(key_path) if key_path else default_key_path()
        self.auth_timeout_s, self.transport_timeout_s = auth_timeout_s, transport_timeout_s
        self._device = None

    def connect(self) -> None:
        from adb_shell.adb_device import AdbDevice

        signer = load_signer(self.key_path)
        if self.address.serial is not None:
            try:
                from adb_shell.transport.usb_transport import UsbTransport
            except ImportError:
                raise RunnerError("USB needs adb-shell's usb extra: pip install 'adb-shell[usb]==0.4.4' "
                                  "(or connect the phone over Wi-Fi: adb:HOST:PORT)") from None
            try:
                transport = UsbTransport.find_adb(serial=self.address.serial)
            except adb_errors.UsbDeviceNotFoundError as exc:
                raise DeviceDisconnected(f"no USB device {self.address.serial}: {exc} (is it plugged in, with USB "
                                         f"debugging on, and no adb server holding it? `adb kill-server`)") from None
        else:
            transport = SendAllTcpTransport(self.address.host, self.address.port)
        device = AdbDevice(transport, default_transport_timeout_s=self.transport_timeout_s)
        # adb-shell calls this just before it sends the public key that the phone's user must
        # accept: a timeout after it is the user's, not the network's.
        asked = []
        try:
            device.connect(rsa_keys=[signer], auth_timeout_s=self.auth_timeout_s,
                           transport_timeout_s=self.transport_timeout_s, auth_callback=asked.append)
        except adb_errors.TcpTimeoutException as exc:
            device.close()
            if asked:
                raise DeviceUnauthorized(
                    f"{self.address.text} did not accept this computer's adb key ({self.key_path}.pub) within "
                    f"{self.auth_timeout_s:.0f} s: unlock the phone, accept the 'Allow USB debugging?' prompt "
                    f"(tick 'Always allow from this computer'), then run again") from None
            raise DeviceDisconnected(f"cannot reach {self.address.text}: {exc}") from None
        except (OSError, adb_errors.AdbConnectionError, adb_errors.UsbDeviceNotFoundError) as exc:
            device.close()
            raise DeviceDisconnected(f"cannot reach {self.address.text}: {exc}") from None
        self._device = device

    @property
    def device(self):
        if self._device is None:
            self.connect()
        return self._device

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None

    def _lost(self, what: str, exc: BaseException) -> DeviceDisconnected:
        self.close()
        return DeviceDisconnected(f"lost the connection to {self.address.text} during {what}: "
                                  f"{type(exc).__name__}: {exc}")

    def shell(self, command: str, timeout_s: float = 60.0) -> tuple[int, str]:
        """(exit code, output) of ``command`` run by the device's shell."""
        lines = list(self.stream(command, timeout_s))
        return self._exit_code(lines, command), "".join(lines[:-1])

    def stream(self, command: str, timeout_s: float = 60.0):
        """The command's output line by line as it comes; the last line is the exit marker."""
        buffered = ""
        try:
            # A subshell: the marker follows even a command that runs `exit`.
            for chunk in self.device.streaming_shell(f"({command}\n); echo {EXIT_MARKER}$?", read_timeout_s=timeout_s,
                                                     transport_timeout_s=timeout_s):
                buffered += chunk
                *complete, buffered = buffered.split("\n")
                for line in complete:
                    yield line + "\n"
        except LINK_ERRORS as exc:
            raise self._lost(f"`{command[:80]}`", exc) from None
        if buffered:
            yield buffered

    @staticmethod
    def _exit_code(lines: list[str], command: str) -> int:
        last = lines[-1].strip() if lines else ""
        if not last.startswith(EXIT_MARKER):
            raise DeviceDisconnected(f"`{command[:80]}` ended without its exit code (the shell was cut off)")
        return int(last[len(EXIT_MARKER):])

    def check(self, command: str, timeout_s: float = 60.0) -> str:
        code, out = self.shell(command, timeout_s)
        if code != 0:
            raise RunnerError(f"`{command[:120]}` failed on {self.address.text} (exit {code}): {out.strip()[-500:]}")
        return out

    def push(self, local, remote: str, mode: int = 0o755) -> None:
        try:
            self.device.push(str(local), remote, st_mode=0o100000 | mode, read_timeout_s=self.transport_timeout_s,
                             transport_timeout_s=self.transport_timeout_s)
        except LINK_ERRORS as exc:
            raise self._lost(f"the push of {Path(local).name}", exc) from None

    def push_missing(self, files: dict, mode: int = 0o755) -> list[str]:
        """Push {local path: remote path} except files whose remote copy has the same SHA-256
        (a partial copy left by a dropped push has another); returns the remote paths pushed."""
        if not files:
            return []
        remote = " ".join(shlex.quote(r) for r in files.values())
        _, out = self.shell(f"sha256sum {remote} 2>/dev/null", 120)  # missing files: no line
        there = {}
        for line in out.splitlines():
            digest, _, name = line.strip().partition(" ")
            there[name.strip().lstrip("*")] = digest
        pushed = []
        for local, remote_path in files.items():
            if there.get(remote_path) != sha256(local):
                self.push(local, remote_path, mode)
                pushed.append(remote_path)
        return pushed

    def pull(self, remote: str, local) -> None:
        try:
            self.device.pull(remote, str(local), read_timeout_s=self.transport_timeout_s,
                             transport_timeout_s=self.transport_timeout_s)
        except LINK_ERRORS as exc:
            raise self._lost(f"the pull of {remote}", exc) from None
