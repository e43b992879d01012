"""What is not the service: synthetic workload generators, the wide segment
mix, the demo and the Online Retail dataset loader. Nothing in models/,
engine/, agents/ or app/ imports this package at module level (import-linter
contracts in pyproject.toml); the CLI's ``demo`` and ``produce-demo``
commands import it lazily."""
