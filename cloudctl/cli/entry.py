"""The console script's entry point: answers `cloudctl --version` before typer loads (a
monitoring probe or a shell prompt asks it often), then hands everything else to the app."""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        from cloudctl import __version__

        sys.stdout.write(f"cloudctl {__version__}\n")
        return 0
    # Importing the CLI makes only objects that live as long as the process (modules,
    # classes, functions); the cycle collector would walk them over and over for nothing.
    # They are set aside once made, and collection resumes for what the command makes.
    collecting = gc.isenabled()
    gc.disable()
    from cloudctl.cli.app import main as app_main

    gc.freeze()
    if collecting:
        gc.enable()
    return app_main(args)


if __name__ == "__main__":
    sys.exit(main())
