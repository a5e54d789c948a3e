"""Item feature extraction: text (bundled all-MiniLM-L6-v2) and images (user-supplied weights)."""
