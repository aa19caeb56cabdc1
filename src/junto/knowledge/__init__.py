"""What is learnt from a transcript: summary, chapters, key points, questions, decisions,
action items, topics, and the sentence embeddings that search and chapters use."""
