"""Tests of allocator.model."""
