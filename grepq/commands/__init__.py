"""``grepq`` subcommands: each module has ``add_parser(subparsers)``; the parser it adds sets ``func=run``."""
