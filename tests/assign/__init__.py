"""Tests of allocator.assign."""
