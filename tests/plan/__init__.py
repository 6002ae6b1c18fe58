"""Tests of allocator.plan."""
