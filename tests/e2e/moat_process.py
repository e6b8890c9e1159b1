"""Start and stop a real `moat serve` process for the end-to-end tests.

    server = moat_server(binary, workdir, config)   # config: a dict written out as YAML
    server.start()                                   # waits for "moat: listening on HOST:PORT"
    requests.get(server.url("/health"))
    assert server.stop() == 0                        # SIGTERM, drain, exit status

The contract (tests/e2e relies on it, DESIGN.md section 3): `moat serve --config FILE --listen
127.0.0.1:0` prints exactly one line to stdout when ready, `moat: listening on HOST:PORT`, and logs
to stderr (kept here in a file whose tail is shown when something goes wrong).
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

READY_RE = re.compile(r"^moat: listening on (\S+):(\d+)$")


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    # Quote everything that is not a plain word so YAML never reinterprets it.
    if re.fullmatch(r"[A-Za-z0-9_./-]+", text) and text not in ("yes", "no", "on", "off", "null"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for nested dicts and lists of scalars (enough for a moat config)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(item, indent + 2))
            elif isinstance(item, dict):
                lines.append(f"{pad}{key}: {{}}")
            elif isinstance(item, list):
                lines.append(f"{pad}{key}: []")
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                body = to_yaml(item, indent + 2).lstrip()
                lines.append(f"{pad}- {body}")
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        lines.append(pad + _yaml_scalar(value))
    return "\n".join(lines)


class moat_server:
    def __init__(self, binary: Path, workdir: Path, config: dict, name: str = "moat"):
        self.binary = Path(binary)
        self.workdir = Path(workdir)
        self.config = config
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.host = ""
        self.port = 0
        self.ready_line = ""
        self.config_path = self.workdir / f"{name}.yaml"
        self.log_path = self.workdir / f"{name}.stderr.log"
        self._log_file = None
        self.stopped = False  # stop() was called: the test ended the process on purpose

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> "moat_server":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(to_yaml(self.config) + "\n", encoding="utf-8")
        self._log_file = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--config", str(self.config_path),
             "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log_file,
            cwd=self.workdir)
        line = self._read_stdout_line(timeout_s)
        match = READY_RE.match(line)
        if not match:
            self.kill()
            raise RuntimeError(
                f"{self.name}: expected 'moat: listening on HOST:PORT' on stdout, got {line!r}\n"
                f"exit status {self.proc.returncode}; stderr tail:\n{self.log_tail()}")
        self.ready_line = line
        self.host, self.port = match.group(1), int(match.group(2))
        if self.port == 0:
            self.kill()
            raise RuntimeError(f"{self.name}: printed port 0 instead of the bound port")
        return self

    def _read_stdout_line(self, timeout_s: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            byte = os.read(fd, 1)
            if not byte:  # the process closed stdout (it exited)
                self.proc.wait(timeout=5)
                break
            data += byte
        return data.decode("utf-8", "replace").rstrip("\n")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        """Signals the process and waits; returns the exit status (kills it after timeout_s)."""
        if self.proc is None:
            return 0
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError(f"{self.name}: did not exit {timeout_s}s after signal {sig}\n"
                                   f"stderr tail:\n{self.log_tail()}")
        self._close_files()
        return self.proc.returncode

    def kill(self) -> None:
        self.stopped = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_files()

    def _close_files(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def extra_stdout(self) -> str:
        """What the process wrote to stdout after the ready line (call after it exited)."""
        assert self.proc is not None and self.proc.stdout is not None
        if self.proc.poll() is None:
            raise RuntimeError("extra_stdout() needs the process to have exited")
        return self.proc.stdout.read().decode("utf-8", "replace")

    # ---- helpers ---------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    @property
    def base_url(self) -> str:
        return self.url("/v1")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])
