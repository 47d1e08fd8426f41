"""``make demo``: a sample clickstream through the whole pipeline on the local sandbox."""
