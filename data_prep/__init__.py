"""Dataset preparation for samod: the rendered song corpus (synth), importers for real datasets."""
