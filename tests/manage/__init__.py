"""Tests of allocator.manage."""
