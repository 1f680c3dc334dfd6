"""What cloudctl does for each command: one room per noun, above the scheduler, enactment and
the store, below the CLI.

`App` (built by the composition root, `cloudctl.runtime.build_real`) holds what a command
shares: settings, the clock, the store, the open drivers. Its rooms are `app.hosts`,
`app.images`, `app.leases`, `app.vms`, `app.schedule`, `app.clouds`, `app.ticks` and
`app.admin`; a CLI module calls its own room and renders what it returns.
"""

from cloudctl.app.context import App

__all__ = ["App"]
