"""Tests of allocator.targeting."""
