"""The inputs stage: the scenario file, the canonical and raw tables and their checks, and the
fingerprints and output folders that keep what a user gave apart from what allocator wrote."""
