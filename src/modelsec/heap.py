"""The cyclic garbage collector during scans of many files.

Python's collector traverses every tracked object of a generation it collects, and a scan's
heap is mostly modules, classes and tables that live as long as the process: a full
collection walks them all again, and in a forked worker that walk writes to every page it
touches (copy-on-write), so each worker ends up copying its parent's heap. Scanning 1,000
small pickles spent about a fifth of its time there (benchmarks/many_files.py, issue 14).

:func:`settle` moves every object alive at that moment out of the collector's way
(:func:`gc.freeze`, an O(1) splice of lists). Reference counting still frees them, so the
only thing that can stay behind is cyclic garbage that already existed when it was called:
call it where the heap holds long-lived state only, in processes that end with their scan:
``modelsec scan`` before it scans, and :mod:`modelsec.parallel` before it forks workers.
The engine itself never calls it: the operator and the webhook scan for weeks, and cyclic
garbage frozen at each scan would add up.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Exempt every object alive now from future collections."""
    gc.freeze()
