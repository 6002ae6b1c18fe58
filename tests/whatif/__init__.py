"""Tests of allocator.whatif."""
