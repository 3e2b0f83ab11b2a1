"""How soon a thread that asks for Python's lock (GIL) gets it."""

from __future__ import annotations

import sys

#: How long a thread may hold the GIL while another waits for it, in seconds (Python's
#: default: 5 ms). An import checks the next part of a batch while a thread of its own writes
#: the previous one; that writer takes the GIL back after every wait for the database (each
#: 128 KiB chunk of a COPY, each answer), and waited up to 5 ms each time behind the checks
#: while the server sat idle. At 1 ms, one 10k-contact import (in process, PostgreSQL) took
#: 342-394 ms instead of 440-443 (18ab3da); 0.5 and 0.1 ms were no better (bench/README).
SWITCH_INTERVAL = 0.001


def hand_over_sooner() -> None:
    """Lower the process's switch interval to SWITCH_INTERVAL; never raise it.

    A server's worker and `audience worker` do so as they start; an import written in parts
    does so too, for an app built in a process of its own (create_app, embedded or under
    test). The interval is the process's: it is not put back after, since another thread's
    import may be under way.
    """
    if sys.getswitchinterval() > SWITCH_INTERVAL:
        sys.setswitchinterval(SWITCH_INTERVAL)
