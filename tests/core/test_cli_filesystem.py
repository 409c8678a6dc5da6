"""``modelsec scan`` on paths that cannot be read as model files (issue 10, items 10-12).

Every one must end in ERROR (exit 2) naming the path: never skipped as if absent (a
malicious model inside would be ALLOWED), never a hang, never a traceback with exit 1
(which CI reads as BLOCKED). Permission tests run as an unprivileged user: root reads
everything.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from pathlib import Path

import pytest
from cli_helpers import OS_SYSTEM_PICKLE, modelsec, unprivileged, world_dir  # noqa: F401

from modelsec.bytesource import FileSource, NotRegularFile
from modelsec.engine import Engine

ERROR, BLOCKED, ALLOWED = 2, 1, 0


def model_dir(root: Path) -> Path:
    model = root / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "mlp"}')
    return model


def assert_error_naming(result, *names: str) -> None:
    assert result.returncode == ERROR, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for name in names:
        assert name in result.stdout, result.stdout


@pytest.mark.parametrize("mode", [0o000, 0o311], ids=["no-permission", "execute-only"])
def test_a_directory_that_cannot_be_listed_is_an_error_not_an_empty_model(world_dir, unprivileged, mode):
    model = model_dir(world_dir)
    hidden = model / "hidden"
    hidden.mkdir()
    (hidden / "weights.pkl").write_bytes(OS_SYSTEM_PICKLE)
    model.chmod(0o755)
    hidden.chmod(mode)
    result = modelsec("scan", "model", "--no-progress", cwd=world_dir, as_user=unprivileged)
    assert_error_naming(result, "model/hidden", "cannot list directory")


def test_an_unreadable_file_is_an_error_naming_it(world_dir, unprivileged):
    model = model_dir(world_dir)
    secret = model / "weights.pkl"
    secret.write_bytes(OS_SYSTEM_PICKLE)
    secret.chmod(0o000)
    result = modelsec("scan", "model", "--no-progress", cwd=world_dir, as_user=unprivileged)
    assert_error_naming(result, "model/weights.pkl", "Permission denied")
    alone = modelsec("scan", "model/weights.pkl", "--no-progress", cwd=world_dir, as_user=unprivileged)
    assert_error_naming(alone, "model/weights.pkl", "Permission denied")


def test_a_fifo_is_refused_without_opening_it(world_dir):
    os.mkfifo(world_dir / "pipe")  # no writer: a blocking open() would wait forever
    result = modelsec("scan", "pipe", "--no-progress", cwd=world_dir, timeout=60)
    assert_error_naming(result, "pipe: not a regular file but a FIFO")
    model = model_dir(world_dir)
    os.mkfifo(model / "weights.bin")
    inside = modelsec("scan", "model", "--no-progress", cwd=world_dir, timeout=60)
    assert_error_naming(inside, "model/weights.bin: not a regular file but a FIFO")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_character_devices_are_refused_not_scanned_as_empty(device):
    if not os.path.exists(device):
        pytest.skip(f"{device} does not exist here")
    result = modelsec("scan", device, "--no-progress", timeout=60)
    assert_error_naming(result, f"{device}: not a regular file but a character device")


def test_devices_and_sockets_inside_a_model_are_errors(world_dir):
    model = model_dir(world_dir)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(model / "server.sock"))
    try:
        try:
            os.mknod(model / "zero", stat.S_IFCHR | 0o600, os.makedev(1, 5))
            expected = [
                "model/server.sock: not a regular file but a socket",
                "model/zero: not a regular file but a character device",
            ]
        except PermissionError:  # no CAP_MKNOD in this container: the socket still counts
            expected = ["model/server.sock: not a regular file but a socket"]
        result = modelsec("scan", "model", "--no-progress", cwd=world_dir, timeout=60)
    finally:
        listener.close()
    assert_error_naming(result, *expected)


def test_symlink_loops_and_dangling_links_are_errors_not_tracebacks(world_dir):
    model = model_dir(world_dir)
    (model / "a").symlink_to("b")
    (model / "b").symlink_to("a")
    (model / "gone").symlink_to("deleted-weights.bin")
    result = modelsec("scan", "model", "--no-progress", cwd=world_dir)
    assert_error_naming(
        result,
        "model/a: symbolic link loop",
        "model/b: symbolic link loop",
        "model/gone: dangling symbolic link to deleted-weights.bin",
    )
    as_target = modelsec("scan", "model/a", "--no-progress", cwd=world_dir)
    assert_error_naming(as_target, "model/a: symbolic link loop")
    doc = json.loads(modelsec("scan", "model", "--format", "json", cwd=world_dir).stdout)
    assert {(i["file"], i["code"]) for i in doc["models"][0]["incomplete"]} >= {
        ("model/a", "MS-GEN-004"),
        ("model/b", "MS-GEN-004"),
        ("model/gone", "MS-GEN-004"),
    }


def test_file_names_that_are_not_utf8_are_scanned_and_shown_escaped(world_dir):
    model = model_dir(world_dir)
    raw_name = os.fsencode(model) + b"/w\xffeights.pkl"
    with open(raw_name, "wb") as f:
        f.write(OS_SYSTEM_PICKLE)
    table = modelsec("scan", "model", "--no-progress", cwd=world_dir)
    assert table.returncode == BLOCKED, table.stdout + table.stderr
    assert "Traceback" not in table.stderr
    assert "model/w\\udcffeights.pkl" in table.stdout  # visible, not a raw byte
    doc = json.loads(modelsec("scan", "model", "--format", "json", cwd=world_dir).stdout)
    assert {f["file"] for f in doc["models"][0]["findings"]} >= {"model/w\udcffeights.pkl"}
    sarif = json.loads(modelsec("scan", "model", "--format", "sarif", cwd=world_dir).stdout)
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]
    }
    assert "model/w%FFeights.pkl" in uris


def test_output_path_is_checked_before_the_scan(world_dir):
    (world_dir / "m.pkl").write_bytes(OS_SYSTEM_PICKLE)
    missing_dir = modelsec("scan", "m.pkl", "-o", str(world_dir / "no" / "such" / "r.json"), cwd=world_dir)
    assert missing_dir.returncode == ERROR and "Traceback" not in missing_dir.stderr
    assert "does not exist" in missing_dir.stderr and len(missing_dir.stderr.splitlines()) == 1
    assert missing_dir.stdout == ""  # no report: nothing was scanned
    (world_dir / "out").mkdir()
    a_directory = modelsec("scan", "m.pkl", "-o", "out", cwd=world_dir)
    assert a_directory.returncode == ERROR and "is a directory" in a_directory.stderr


def test_output_path_check_happens_before_any_model_is_read(world_dir, monkeypatch, capsys):
    # In-process, to observe the order: the scan must not even start.
    from modelsec import sources
    from modelsec.cli.main import main

    def scan_model(*args, **kwargs):
        raise AssertionError("the model was scanned before the output path was checked")

    monkeypatch.setattr(sources, "scan_model", scan_model)
    (world_dir / "m.pkl").write_bytes(OS_SYSTEM_PICKLE)
    code = main(["scan", str(world_dir / "m.pkl"), "-o", str(world_dir / "nope" / "r.sarif")])
    assert code == ERROR and "does not exist" in capsys.readouterr().err


def test_an_unwritable_output_is_refused_before_the_scan(world_dir, unprivileged):
    (world_dir / "m.pkl").write_bytes(OS_SYSTEM_PICKLE)
    locked = world_dir / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    result = modelsec("scan", "m.pkl", "-o", "locked/r.json", cwd=world_dir, as_user=unprivileged)
    assert result.returncode == ERROR and "not writable" in result.stderr and result.stdout == ""


def test_an_unexpected_error_is_exit_2_in_one_line(monkeypatch, capsys, tmp_path):
    from modelsec import policy
    from modelsec.cli.main import main

    def broken(*args, **kwargs):
        raise RuntimeError("a bug\x1b[2J in the rules")

    monkeypatch.setattr(policy, "evaluate", broken)
    (tmp_path / "m.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    assert main(["scan", str(tmp_path / "m.safetensors")]) == ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: a bug\\x1b[2J in the rules" in err
    assert "Traceback" not in err and "\x1b" not in err


def test_file_source_refuses_a_fifo_at_once(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def open_it() -> None:
        try:
            FileSource(fifo).close()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    opener = threading.Thread(target=open_it, daemon=True)
    opener.start()
    opener.join(10)
    assert not opener.is_alive(), "FileSource blocked opening a FIFO"
    assert isinstance(outcome[0], NotRegularFile) and "FIFO" in str(outcome[0])


def test_engine_walk_keeps_order_and_reports_every_gap(tmp_path):
    model = tmp_path / "m"
    (model / "b" / "c").mkdir(parents=True)
    (model / "z.json").write_text("{}")
    (model / "a.json").write_text("{}")
    (model / "b" / "x.json").write_text("{}")
    (model / "b" / "c" / "y.json").write_text("{}")
    os.mkfifo(model / "b" / "fifo")
    report = Engine().scan_path(model)
    assert [Path(f.path).relative_to(model).as_posix() for f in report.files] == [
        "a.json",
        "z.json",
        "b/x.json",
        "b/c/y.json",
    ]
    assert [(Path(i.file).name, i.code) for i in report.incompletes] == [("fifo", "MS-GEN-004")]
