"""Language-model side: index and retrieval, prompts, model loading, engines and the chat chain."""
