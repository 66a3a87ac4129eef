"""The ``ponder`` command and the developer tooling behind it: demo, dev servers, local
processes, database administration, model preparation."""
