"""Weight merging: build one checkpoint from several of one architecture (mergekit recipes)."""
