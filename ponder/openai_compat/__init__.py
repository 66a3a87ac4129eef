"""The OpenAI-compatible Files and Batches surface (``/openai/v1``), mapped onto the native
batches: a request file's lines become a native batch's items."""
