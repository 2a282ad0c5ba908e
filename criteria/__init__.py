"""Success criteria, statistics and the GO / NO_GO decision."""
