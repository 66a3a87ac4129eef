"""Task types: what Ponder can be asked to do with a document, and how each answer is checked."""
