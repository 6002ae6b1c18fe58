"""Tests of allocator.solvers."""
