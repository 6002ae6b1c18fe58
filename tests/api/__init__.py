"""Tests of allocator.api."""
