"""A job's life: submission, the state machine, the run, its trace, reconciliation."""
