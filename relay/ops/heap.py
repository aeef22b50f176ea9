"""The garbage collector's full passes, kept short.

relay's long-lived objects (config models, compiled templates, the Slack client, the modules
themselves: hundreds of thousands of them) would be traversed by every full collection, which
then takes tens of milliseconds and stalls every request in flight. Once the process
has started, and again once a reload's old config is no longer used, `settle` moves everything
alive into the collector's permanent generation (`gc.freeze`), so full passes look only at what
was made since. `unsettle` hands the frozen objects back before a reload, so that the old
config can be collected.
"""

from __future__ import annotations

import gc


def settle() -> None:
    gc.collect()
    gc.freeze()


def unsettle() -> None:
    gc.unfreeze()
