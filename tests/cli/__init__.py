"""Tests of allocator.cli."""
