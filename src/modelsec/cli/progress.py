"""A byte-level progress bar on stderr, shown only for long scans on a terminal."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

SHOW_AFTER_BYTES = 256 << 20  # small scans finish before a bar would help


class Progress:
    """``total_bytes`` may be a function: it is called only when a bar could be shown (a
    directory's total is a walk of its own, which a scan without a bar need not pay)."""

    def __init__(self, total_bytes: int | Callable[[], int], enabled: bool, desc: str = "scanning") -> None:
        self._bar: Any = None
        if not (enabled and sys.stderr.isatty()):
            total_bytes = 0
        elif callable(total_bytes):
            total_bytes = total_bytes()
        if total_bytes >= SHOW_AFTER_BYTES:
            from tqdm import tqdm

            # No monitor thread: directories are scanned by forked workers, and a process
            # forks safely only while it runs one thread (modelsec.parallel).
            tqdm.monitor_interval = 0
            self._bar = tqdm(
                total=total_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=desc,
                file=sys.stderr,
                leave=False,
                mininterval=0.2,
            )
        self._started = time.monotonic()
        self._lock = threading.Lock()  # modelsec verify --jobs hashes from several threads

    @property
    def shown(self) -> bool:
        """A bar is on screen: only then do scanners need to count bytes for it."""
        return self._bar is not None

    def __call__(self, nbytes: int) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.update(nbytes)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
