"""Text conditions for the text-to-image models: sentence encoders and the embeddings cache."""
