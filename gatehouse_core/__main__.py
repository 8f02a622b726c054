"""`python -m gatehouse_core …` is the same as `gatehouse …`."""

from .cli import main

raise SystemExit(main())
