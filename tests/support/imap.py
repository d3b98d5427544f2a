"""A real IMAP server for the tests: a private Dovecot (Debian's dovecot-imapd), on a loopback
port of its own, with one mailbox in a temporary folder. A message is delivered the way a mail
server delivers it, as a file in the mailbox's Maildir; the bot reads it over IMAP."""

from __future__ import annotations

import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bot.devserver import free_port

USER, PASSWORD = "icc@crisis.example", "mailbox-password"
CONFIG = """base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
"""


class Dovecot:
    """Its files under a folder of its own in /tmp: Dovecot's login and mail processes run as
    other users, who must reach them (pytest's own temporary folders are its user's only)."""

    def __init__(self) -> None:
        dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not Path(dovecot).exists():
            raise RuntimeError(
                "Dovecot is not installed: apt-get install dovecot-imapd (.ci/run does)"
            )
        self.root = Path(tempfile.mkdtemp(prefix="icc-dovecot-"))
        self.root.chmod(0o755)
        self.port, self.binary = free_port(), dovecot
        self.owner = pwd.getpwnam("nobody")
        self.maildir = self.root / "home" / USER / "Maildir"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"imap://{USER.replace('@', '%40')}:{PASSWORD}@127.0.0.1:{self.port}/INBOX"

    def start(self) -> None:
        for folder in ("run", "state", "home"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        for sub in ("new", "cur", "tmp"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        self._own(self.root / "home")
        (self.root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        config = self.root / "dovecot.conf"
        config.write_text(
            CONFIG.format(root=self.root, port=self.port, user="nobody", group=self.owner.pw_gid)
        )
        self._process = subprocess.Popen(
            [self.binary, "-F", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while not self._listening():
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError((self.root / "dovecot.log").read_text(errors="replace")[-2000:])
            time.sleep(0.1)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)

    def deliver(self, message: bytes) -> None:
        """A message in the mailbox, unseen, as a mail server would leave it."""
        path = self.maildir / "new" / f"{time.time():.0f}.{uuid.uuid4().hex}.test"
        path.write_bytes(message)
        self._own(path)

    def seen(self) -> int:
        """How many messages the mailbox holds as read."""
        return sum(
            1
            for p in (self.maildir / "cur").iterdir()
            if ":2," in p.name and "S" in p.name.split(":2,")[1]
        )

    def _own(self, path: Path) -> None:
        for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
            shutil.chown(item, self.owner.pw_uid, self.owner.pw_gid)

    def _listening(self) -> bool:
        import socket

        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0
