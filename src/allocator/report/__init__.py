"""The report stage: the one chart module (palette and charts) and the self-contained HTML report."""
