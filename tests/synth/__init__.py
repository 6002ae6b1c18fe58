"""Tests of allocator.synth."""
