"""Hosts of the test bed's own making: network namespaces joined by one bridge.

Every host is a network namespace with its own stack and address on 10.77.<n>.0/24. The
bridge lives in a namespace of its own ("switch"), so nothing is attached to the machine's
own network and no packet can leave it. Cutting a host off takes its link on the switch
down; healing brings it back up. Everything is removed at the end, also after a failure.
"""
from __future__ import annotations

import atexit
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")


class BedUnavailable(RuntimeError):
    """This machine cannot make the test bed; the message says why."""


def check_can_run() -> None:
    if os.uname().sysname != "Linux":
        raise BedUnavailable("the multi-host test bed needs Linux network namespaces")
    if os.geteuid() != 0:
        raise BedUnavailable("the multi-host test bed must run as root (it creates network "
                             "namespaces, a bridge and veth pairs with `ip`)")
    if subprocess.run(["ip", "-V"], capture_output=True).returncode != 0:
        raise BedUnavailable("`ip` (iproute2) is not installed")
    probe = f"bmaprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        raise BedUnavailable(f"cannot create a network namespace here: {made.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *(("-n", ns) if ns else ()), *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


@dataclass
class Host:
    name: str
    ns: str
    addr: str
    link: str  # its port on the switch

    def cmd(self, argv: list[str]) -> list[str]:
        """`argv` run inside this host."""
        return ["ip", "netns", "exec", self.ns, *argv]


class Bed:
    def __init__(self, names: list[str], subnet: int | None = None) -> None:
        self.tag = secrets.token_hex(2)
        self.subnet = subnet if subnet is not None else 64 + secrets.randbelow(128)
        self.switch = f"bma{self.tag}-sw"
        self.hosts: dict[str, Host] = {}
        self._names = names
        self._up = False

    def up(self) -> "Bed":
        atexit.register(self.down)
        self._up = True
        ip("netns", "add", self.switch)
        ip("link", "add", "br0", "type", "bridge", ns=self.switch)
        ip("link", "set", "br0", "up", ns=self.switch)
        for i, name in enumerate(self._names, start=2):
            ns = f"bma{self.tag}-{name}"
            link = f"p{self.tag}{i}"          # the host's port on the switch
            temp = f"h{self.tag}{i}"          # the host's end, renamed eth0 inside it
            ip("netns", "add", ns)
            ip("link", "add", link, "type", "veth", "peer", "name", temp)
            ip("link", "set", link, "netns", self.switch)
            ip("link", "set", temp, "netns", ns)
            ip("link", "set", temp, "name", "eth0", ns=ns)
            ip("link", "set", link, "master", "br0", "up", ns=self.switch)
            addr = f"10.77.{self.subnet}.{i}"
            ip("addr", "add", f"{addr}/24", "dev", "eth0", ns=ns)
            ip("link", "set", "eth0", "up", ns=ns)
            ip("link", "set", "lo", "up", ns=ns)
            self.hosts[name] = Host(name, ns, addr, link)
        return self

    def cut(self, name: str) -> None:
        ip("link", "set", self.hosts[name].link, "down", ns=self.switch)

    def heal(self, name: str) -> None:
        ip("link", "set", self.hosts[name].link, "up", ns=self.switch)

    def enter(self, name: str) -> None:
        """Move this process (its main thread, before it starts others) into a host."""
        with open(NETNS_DIR / self.hosts[name].ns) as f:
            os.setns(f.fileno(), os.CLONE_NEWNET)

    def kill_host(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Signal every process of a host; returns how many there were."""
        pids = self.pids(name)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return len(pids)

    def pids(self, name: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.hosts[name].ns],
                             capture_output=True, text=True).stdout
        # This process may live in a host too (it entered the clients' host): never itself.
        return [int(p) for p in out.split() if int(p) != os.getpid()]

    def down(self) -> None:
        if not self._up:
            return
        self._up = False
        namespaces = [h.ns for h in self.hosts.values()] + [self.switch]
        for _ in range(3):  # a process may fork while we kill: look again
            pids = [pid for h in self.hosts for pid in self.pids(h)]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)  # teardown only: let the kernel reap them before removing namespaces
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
