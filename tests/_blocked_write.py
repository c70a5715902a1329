"""Run ``multitask-unet ARGS``, stalling inside the NTH atomic write of a file named PATTERN.

Usage: python _blocked_write.py PATTERN NTH ARGS...

Every file the library keeps is written to a temporary file and moved into place with
``os.replace``. At the NTH move onto a file whose name matches PATTERN (fnmatch), the temporary
file is first cut to half its length (a write interrupted midway), ``blocked DST`` is printed,
and the process sleeps until the test kills it with SIGKILL. NTH = 0 never stalls.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import time
from pathlib import Path

pattern, nth, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
moves = 0
real_replace = os.replace


def replace(src, dst, *rest, **kwargs):
    global moves
    if fnmatch.fnmatch(Path(dst).name, pattern):
        moves += 1
        if moves == nth:
            os.truncate(src, os.path.getsize(src) // 2)
            print(f"blocked {dst}", flush=True)
            time.sleep(600)
    return real_replace(src, dst, *rest, **kwargs)


os.replace = replace

from multitask_unet.cli import main  # noqa: E402  (after the patch, as the library would run)

sys.exit(main(args))
