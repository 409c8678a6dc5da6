"""Targets with known defects, for the harness's own tests (not in ``PARSERS``)."""

from __future__ import annotations

from harness import Target


def _raise_on_x(data: bytes) -> None:
    if b"X" in data:
        raise IndexError("an X")


def _spin(data: bytes) -> None:
    while True:
        pass


def _spin_on_seed(data: bytes) -> None:
    if data == b"seed":
        _spin(data)


def _allocate(data: bytes) -> None:
    bytearray(512 << 20)  # past the 256 MiB an input may add


def _seeds() -> list[bytes]:
    return [b"seed"]


RAISES = Target("raises", _raise_on_x, _seeds)
SPINS = Target("spins", _spin, _seeds)
SPINS_ON_SEED = Target("spins-on-seed", _spin_on_seed, _seeds)
ALLOCATES = Target("allocates", _allocate, _seeds)
