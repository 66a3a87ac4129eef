"""Batches of jobs: upload, dispatch, state, results, and the nightly inbox run."""
