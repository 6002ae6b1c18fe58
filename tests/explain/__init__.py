"""Tests of allocator.explain."""
