"""A private RabbitMQ node for tests that stop, start or break the broker.

``RabbitNode`` runs a ``rabbitmq-server`` of its own (Debian's package) beside the machine's
shared broker, which it never touches: its own node name, AMQP port, Erlang distribution port,
Erlang port mapper (epmd) port and cookie, its own configuration, data and logs, all under one
directory, and no plugins. ``rabbitmqctl -n NODE`` drives it::

    with RabbitNode(tmp_path / "rabbitmq") as node:  # started; stopped however the block ends
        stack = Stack(amqp_url=node.amqp_url, ...)
        node.stop_app()   # the broker goes away (its Erlang VM stays up) ...
        node.start_app()  # ... and comes back with its queues

Two choices keep the shared node out of it:

- The scripts are run from the directory Debian's ``/usr/sbin/rabbitmq-server`` resolves to
  (``/usr/lib/rabbitmq/bin``), not through that wrapper: run by root, the wrapper re-runs them as
  user ``rabbitmq`` (who cannot read pytest's private temporary directories), and it sends a
  server's output to ``/var/log/rabbitmq/startup_log``, the shared node's. Here they run as the
  user running the tests, with ``HOME`` in the node's directory, so the Erlang cookie is the
  node's own, and with the node's own ``RABBITMQ_CONF_ENV_FILE`` and ``RABBITMQ_CONFIG_FILE``:
  ``/etc/rabbitmq/`` configures the shared node (its name, its port 5672).
- ``ERL_EPMD_PORT`` is a free port: the node starts an epmd of its own there rather than
  registering with the machine's, and ``stop()`` ends that epmd too (``epmd -kill``).

Starting takes about 6 s here (a fresh node creates its database), stopping about 3 s.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import string
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.processes import free_port

# Where the server and CLI scripts are looked for when they are not on PATH (/usr/sbin is not
# on a normal user's PATH).
SEARCH_PATH = "/usr/sbin:/usr/lib/rabbitmq/bin"
NOT_INSTALLED = ("rabbitmq-server is not installed: apt-get install rabbitmq-server "
                 "(`make test` installs it, scripts/ensure-rabbitmq.sh)")


class RabbitNodeError(Exception):
    """The private node did not start, or a rabbitmqctl command on it failed."""


def _scripts_dir() -> Path:
    """The directory of the real rabbitmq-server and rabbitmqctl scripts.

    On Debian, /usr/sbin/rabbitmq-server links to ``rabbitmq-script-wrapper`` beside them.
    """
    search = os.pathsep.join(p for p in (os.environ.get("PATH", ""), SEARCH_PATH) if p)
    found = shutil.which("rabbitmq-server", path=search)
    if found is None:
        raise RabbitNodeError(NOT_INSTALLED)
    return Path(found).resolve().parent


def _tail(path: Path, characters: int = 3000) -> str:
    return path.read_text(errors="replace")[-characters:] if path.exists() else "(no output)"


@dataclass
class RabbitNode:
    """A RabbitMQ node of its own in ``directory`` (created; keep it short-lived, per test)."""

    directory: Path
    name: str = field(default_factory=lambda: f"gltest-{uuid.uuid4().hex[:8]}@localhost")
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    start_timeout: float = 120.0
    _server: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _scripts: Path | None = field(default=None, init=False, repr=False)

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def server_log(self) -> Path:
        """The server's standard output and error (the node's own log is under ``log/``)."""
        return self.directory / "server.out"

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the node and return once RabbitMQ runs on it; stopped again if that fails."""
        if self._server is not None:
            raise RabbitNodeError(f"{self.name} was already started")
        self._scripts = _scripts_dir()
        self._write_files()
        try:
            with self.server_log.open("ab") as output:
                self._server = subprocess.Popen(
                    [str(self._scripts / "rabbitmq-server")], cwd=self.directory,
                    env=self._env(), stdout=output, stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stop() can end all of it
                )
            self._await_startup()
        except BaseException as exc:
            try:
                self.stop()
            except RabbitNodeError as cleanup:  # the start's error stays the one raised
                exc.add_note(f"stopping it after that: {cleanup}")
            raise

    def stop_app(self) -> None:
        """Stop RabbitMQ on the node (clients are disconnected; the Erlang VM stays up)."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        """Start RabbitMQ on the node again; returns once it runs."""
        self.ctl("start_app")
        self.ctl("await_startup")

    def stop(self) -> None:
        """Shut the node and its epmd down. Idempotent; every step is tried, and what went
        wrong is raised after."""
        errors: list[str] = []
        server, self._server = self._server, None
        if server is not None:
            failed: Exception | None = None
            if server.poll() is None:
                try:
                    self.ctl("shutdown", timeout=60)
                except (RabbitNodeError, subprocess.TimeoutExpired) as exc:
                    failed = exc  # fine if the node was dying anyway (a failed start)
            try:
                server.wait(30 if failed is None else 5)
            except subprocess.TimeoutExpired:
                self._kill_group(server)
                server.wait(30)
                errors.append(f"killed, did not exit after shutdown: {failed or 'it succeeded'}")
        if self._scripts is not None:
            epmd = self._epmd("-kill")  # "Cannot connect": the node never started one
            said = (epmd.stdout + epmd.stderr).strip()
            if epmd.returncode != 0 and "Cannot connect" not in said:
                errors.append(f"epmd -port {self.epmd_port} -kill: {said}")
        if errors:
            raise RabbitNodeError(f"{self.name}: " + "; ".join(errors))

    def __enter__(self) -> RabbitNode:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # --- commands ---------------------------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """``rabbitmqctl -n NODE ARGS``; its output, or RabbitNodeError with it."""
        if self._scripts is None:
            raise RabbitNodeError(f"{self.name} was never started")
        result = subprocess.run(
            [str(self._scripts / "rabbitmqctl"), "-n", self.name, *args], env=self._env(),
            cwd=self.directory, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RabbitNodeError(f"rabbitmqctl -n {self.name} {' '.join(args)} exited "
                                  f"{result.returncode}:\n{result.stdout}{result.stderr}")
        return result.stdout

    # --- internals --------------------------------------------------------------------------

    def _await_startup(self) -> None:
        """``rabbitmqctl wait PIDFILE``: waits for the pid file, the VM, then RabbitMQ.

        ``await_startup`` cannot be used for this: it fails at once (exit 69) while the VM
        is not up yet. The server is checked each second meanwhile, so a node that dies on
        start fails here with its output rather than after the timeout.
        """
        assert self._server is not None and self._scripts is not None
        waiting = subprocess.Popen(
            [str(self._scripts / "rabbitmqctl"), "-n", self.name, "wait", str(self._pid_file),
             "--timeout", str(int(self.start_timeout))],
            env=self._env(), cwd=self.directory, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        elapsed = 0.0
        while True:
            try:
                output, _ = waiting.communicate(timeout=1)
                break
            except subprocess.TimeoutExpired:
                elapsed += 1
            if self._server.poll() is not None or elapsed > self.start_timeout + 10:
                waiting.kill()
                waiting.communicate()
                reason = (f"exited {self._server.returncode}" if self._server.poll() is not None
                          else f"did not start in {self.start_timeout:.0f} s")
                raise RabbitNodeError(f"{self.name} {reason}:\n{_tail(self.server_log)}")
        if waiting.returncode != 0:
            raise RabbitNodeError(
                f"{self.name} did not start (rabbitmqctl wait exited {waiting.returncode}):\n"
                f"{output.decode(errors='replace')}\n--- server output ---\n"
                f"{_tail(self.server_log)}")

    @property
    def _pid_file(self) -> Path:
        return self.directory / "node.pid"

    def _write_files(self) -> None:
        for sub in ("home", "mnesia", "log"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        cookie = self.directory / "home" / ".erlang.cookie"
        cookie.write_text("".join(secrets.choice(string.ascii_uppercase) for _ in range(32)))
        cookie.chmod(0o400)  # Erlang refuses a cookie others can read
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq-env.conf").write_text("")
        (self.directory / "rabbitmq.conf").write_text(
            "# A private test node (tests/rabbitmq_node.py). guest logs in from loopback only,\n"
            "# RabbitMQ's default, stated because the tests rely on it.\n"
            "loopback_users.guest = true\n")

    def _env(self) -> dict[str, str]:
        """The environment of the node and of rabbitmqctl for it: nothing inherited from a
        RABBITMQ_* or ERL_* variable of the caller's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        d = self.directory
        env.update({
            "HOME": str(d / "home"),  # the Erlang cookie
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_RELAXED_COMMAND_CHECK": "1",  # epmd -kill also with a hung node listed
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),  # none
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(self._pid_file),
        })
        return env

    def _epmd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["epmd", "-port", str(self.epmd_port), *args], env=self._env(),
                              capture_output=True, text=True, timeout=30, check=False)

    @staticmethod
    def _kill_group(server: subprocess.Popen[bytes]) -> None:
        """SIGKILL the server's process group (its script and Erlang VM), by its id."""
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
