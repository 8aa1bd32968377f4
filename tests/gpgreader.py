"""A real OpenPGP reader for the tests: GnuPG in a throw-away GNUPGHOME, keys generated at test time."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

GPG = shutil.which("gpg")


@dataclass
class Gpg:
    """gpg with its own home (public and secret test keys live only there) and no network."""

    home: Path

    def run(self, *args: str, stdin: bytes = b"", check: bool = True) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "GNUPGHOME": str(self.home)}
        cmd = [str(GPG), "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "", *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, env=env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"gpg {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc

    def fingerprint(self, uid: str) -> str:
        out = self.run("--list-keys", "--with-colons", uid).stdout.decode()
        return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))

    def generate(self, address: str, *, encrypt: bool = True, faked_time: str = "", expire: str = "1y") -> str:
        """A fresh key for address (ed25519 primary, cv25519 encryption subkey unless sign-only)."""
        when = ("--faked-system-time", faked_time) if faked_time else ()
        self.run(*when, "--quick-gen-key", f"Test <{address}>", "ed25519", "cert,sign", expire)
        fpr = self.fingerprint(address)
        if encrypt:
            self.run(*when, "--quick-add-key", fpr, "cv25519", "encr", expire)
        return fpr

    def revoke(self, fpr: str) -> None:
        cert = (self.home / "openpgp-revocs.d" / f"{fpr}.rev").read_text()
        self.run("--import", stdin=cert.replace(":-----BEGIN", "-----BEGIN").encode())

    def export(self, address: str, path: Path) -> Path:
        path.write_bytes(self.run("--export", "--armor", address).stdout)
        return path

    def decrypt(self, data: bytes) -> tuple[bytes, str]:
        """(plaintext, gpg's status lines) of an armored or binary OpenPGP message."""
        proc = self.run("--status-fd", "2", "--decrypt", stdin=data)
        return proc.stdout, proc.stderr.decode(errors="replace")

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(self.home)}, capture_output=True
        )
        shutil.rmtree(self.home, ignore_errors=True)


def new_gpg() -> Gpg:
    # A short path: gpg-agent's socket must fit in sun_path.
    return Gpg(Path(tempfile.mkdtemp(prefix="mvgpg-", dir="/tmp")))
