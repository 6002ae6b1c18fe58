"""Tests of allocator.report."""
