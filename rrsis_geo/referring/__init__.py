"""Scene-level referring: expression analysis, candidates and their resolution."""
