"""`python -m cloudctl` runs the cloudctl command."""
from cloudctl.cli.app import main

raise SystemExit(main())
