"""Search over published conversations and snippets: passages, keyword + semantic, fused."""
