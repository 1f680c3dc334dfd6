"""The console script's entry point: answers `cloudctl --version` before typer loads (a
monitoring probe or a shell prompt asks it often), then hands everything else to the app."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        from cloudctl import __version__

        sys.stdout.write(f"cloudctl {__version__}\n")
        return 0
    from cloudctl.cli.app import main as app_main

    return app_main(args)


if __name__ == "__main__":
    sys.exit(main())
