"""`python -m cloudctl` runs the cloudctl command."""
from cloudctl.cli.entry import main

raise SystemExit(main())
