"""``ponder eval``: a labelled dataset through the real pipeline for several strategies, scored
against gold, with what each strategy costs (loaders, scoring, harness, report)."""
