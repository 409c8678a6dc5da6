"""Run one command inside an unpacked image's root filesystem, as a container would: run
this under ``unshare --mount --net --pid --fork --propagation private`` (as root).

    image_sandbox.py ROOTFS UID:GID ENV_JSON -- /opt/modelsec/bin/modelsec --version

In the private mount namespace it makes the root filesystem read-only (the chart's
readOnlyRootFilesystem), gives it a writable tmpfs /tmp (the chart's emptyDir), a /dev with
null, zero, random and urandom, and a /proc; masks every shell (the image must not need
one); then chroots, drops to UID:GID with no supplementary groups and no_new_privs, and
execs the command with the image's environment. Nothing of the host but those devices is
visible, and with --net there is no network but loopback.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

PR_SET_NO_NEW_PRIVS = 38
SHELLS = ("usr/bin/sh", "usr/bin/dash", "usr/bin/bash", "bin/sh", "bin/dash", "bin/bash")
DEVICES = ("null", "zero", "random", "urandom")


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def prepare(root: str) -> None:
    mount("--bind", root, root)
    mount("-o", "remount,bind,ro", root, root)
    mount("-t", "tmpfs", "-o", "mode=1777,size=256m", "tmpfs", f"{root}/tmp")
    mount("-t", "tmpfs", "-o", "mode=0755,size=1m", "tmpfs", f"{root}/dev")
    for device in DEVICES:
        target = f"{root}/dev/{device}"
        open(target, "w").close()
        mount("--bind", f"/dev/{device}", target)
    mount("-t", "proc", "proc", f"{root}/proc")
    for shell in SHELLS:
        path = os.path.join(root, shell)
        if os.path.exists(path) and not os.path.islink(path):
            mount("--bind", "/dev/null", path)  # exec of it now fails: no shell at run time


def drop_to(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def main(argv: list[str]) -> int:
    root, user, env_json, separator, *command = argv
    if separator != "--" or not command:
        print(__doc__, file=sys.stderr)
        return 2
    uid, gid = (int(part) for part in user.split(":"))
    environment = dict(item.split("=", 1) for item in json.loads(env_json))
    prepare(os.path.realpath(root))
    os.chroot(root)
    os.chdir("/")
    drop_to(uid, gid)
    os.execve(command[0], command, environment)
    return 127  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
