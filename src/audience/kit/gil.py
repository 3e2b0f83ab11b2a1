"""How soon a thread that asks for Python's lock (GIL) gets it."""

from __future__ import annotations

import sys

#: How long a thread may hold the GIL while another waits for it, in seconds (Python's
#: default: 5 ms): an import's writing thread needs it back after each wait for the database,
#: and should not wait behind the thread checking the next part (bench/README, "Where the
#: time goes").
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
