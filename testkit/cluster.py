"""Local clusters for `make faults-cluster`: three RabbitMQ nodes and a PostgreSQL primary with a
streaming standby, each on its own ports, data dirs and Erlang cookie under one temp folder.

Nothing here touches this machine's default services (127.0.0.1:5432 and :5672, their data, the
cookie in the rabbitmq user's HOME): node names `c1@localhost`… differ from the default node's,
and every path comes from the temp folder. Processes are started here and only those are
stopped, synchronously (so a `finally` or `atexit` can tear down after Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from testkit.services import free_port

# The real scripts: /usr/sbin/rabbitmq-server switches to the rabbitmq user and its HOME, that
# is to the default node's cookie.
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
PG_BIN = (
    sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    if Path("/usr/lib/postgresql").exists()
    else Path()
)
# Seen as down after 10-14 s without ticks (60-75 s by default), so a 30 s pause is a partition.
ERL_ARGS = "-kernel inet_dist_use_interface {127,0,0,1} -kernel net_ticktime 10"


def _run(command: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")
    return done.stdout


async def _arun(command: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> str:
    return await asyncio.to_thread(_run, command, env, timeout)


class RabbitNode:
    def __init__(self, root: Path, home: Path, name: str) -> None:
        self.name = name
        self.node = f"{name}@localhost"
        self.port = free_port()
        self.dir = root / name
        self.dir.mkdir()
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            # A paused node never sees itself in a minority, so pause_minority would leave the
            # partition recorded for good once it resumes; autoheal restarts the losing side.
            "cluster_partition_handling = autoheal\n"
            "log.console = false\n"
        )
        (self.dir / "env.conf").write_text("")  # not /etc/rabbitmq/rabbitmq-env.conf
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ERL_ARGS,
            "RABBITMQ_CTL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    def url(self, user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/"

    def start(self) -> None:
        (self.dir / "pid").unlink(missing_ok=True)  # a killed incarnation's: `wait` reads it
        with (self.dir / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(RABBIT_BIN / "rabbitmq-server")],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: killpg reaches beam and its helpers only
            )

    async def ctl(self, *args: str, timeout: float = 120) -> str:
        return await _arun(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args], self.env, timeout
        )

    async def await_startup(self) -> None:
        # `wait` (unlike await_startup) also covers a node that is not yet reachable at all.
        await self.ctl("wait", str(self.dir / "pid"), "--timeout", "150", timeout=180)

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL the node (and its Erlang helpers): a box lost at once."""
        self.signal(signal.SIGCONT)  # a paused group must be able to die
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)
        self.process = None

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False


class RabbitCluster:
    """Three nodes, clustered; quorum queues get a replica on each."""

    def __init__(self, root: Path, size: int = 3) -> None:
        home = root / "home"
        home.mkdir()
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
        (root / "enabled_plugins").write_text("[].\n")
        self.nodes = [RabbitNode(root, home, f"c{n}") for n in range(1, size + 1)]

    def url(self, first: int = 0, query: str = "") -> str:
        """Every node, starting at `first` (so clients spread over the nodes)."""
        order = self.nodes[first:] + self.nodes[:first]
        return ",".join(node.url() + query for node in order)

    async def start(self) -> None:
        for node in self.nodes:
            node.start()
        await asyncio.gather(*(node.await_startup() for node in self.nodes))
        seed = self.nodes[0].node
        for node in self.nodes[1:]:
            await node.ctl("stop_app")
            await node.ctl("join_cluster", seed)
            await node.ctl("start_app")
        await self.wait_healthy()

    async def wait_healthy(self, timeout: float = 180) -> None:
        """Every node up and seeing all the others."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all([await self.running_nodes(node) == len(self.nodes) for node in self.nodes]):
                    return
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("RabbitMQ cluster not healthy in time")
            await asyncio.sleep(1)

    async def running_nodes(self, node: RabbitNode) -> int:
        status = json.loads(await node.ctl("cluster_status", "--formatter", "json", timeout=20))
        return len(status.get("running_nodes", []))

    async def leader(self, queue: str) -> RabbitNode:
        """The node leading a quorum queue."""
        for node in self.nodes:
            if node.process is None or node.paused:
                continue
            try:
                out = await node.ctl("list_queues", "-q", "--formatter", "json", "name", "leader")
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
            for row in json.loads(out):
                if row["name"] == queue:
                    return next(n for n in self.nodes if n.node == row["leader"])
        raise AssertionError(f"no leader found for {queue}")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres OS user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresNode:
    def __init__(self, root: Path, name: str) -> None:
        self.dir = root / name
        self.port = free_port()
        self.log = root / f"{name}.log"

    def pg(self, tool: str, *args: str, timeout: float = 120) -> str:
        return _run(_as_postgres([str(PG_BIN / tool), *args]), timeout=timeout)

    def start(self, *options: str) -> None:
        settings = " ".join(
            [f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-k {self.dir.parent}", *options]
        )
        self.pg(
            "pg_ctl",
            "-D",
            str(self.dir),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            settings,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        if (self.dir / "postmaster.pid").exists():
            self.pg("pg_ctl", "-D", str(self.dir), "-m", mode, "-w", "-t", "60", "stop")

    def kill(self) -> None:
        """Teardown: immediate stop, then SIGKILL the postmaster if it is still there."""
        pid_file = self.dir / "postmaster.pid"
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop("immediate")
        if pid_file.exists():
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)


class PostgresPair:
    """A primary and a synchronous streaming standby: a commit the worker saw is on both, so
    promoting the standby loses nothing that was acknowledged."""

    def __init__(self, root: Path) -> None:
        pg_root = root / "pg"
        pg_root.mkdir()
        if os.geteuid() == 0:
            root.chmod(0o755)
            shutil.chown(pg_root, "postgres", "postgres")
        self.primary = PostgresNode(pg_root, "primary")
        self.standby = PostgresNode(pg_root, "standby")

    def url(self, database: str) -> str:
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    async def start(self) -> None:
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        p = self.primary
        p.pg("initdb", "-D", str(p.dir), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        # Synchronous only on the primary's command line: the standby, once promoted, has no
        # standby of its own and must not wait for one.
        p.start("-c synchronous_standby_names=*")
        s = self.standby
        s.pg(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(p.port),
            "-U",
            "postgres",
            "-D",
            str(s.dir),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        )
        s.start()

    async def failover(self) -> None:
        """Stop the primary, then promote the standby: fenced first, so there is never a second
        writable server taking commits the new primary will not have."""
        await asyncio.to_thread(self.primary.stop, "fast")
        await asyncio.to_thread(
            self.standby.pg, "pg_ctl", "-D", str(self.standby.dir), "-w", "-t", "60", "promote"
        )

    def stop(self) -> None:
        self.standby.kill()
        self.primary.kill()
