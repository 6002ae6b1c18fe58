"""Tests of allocator.inputs."""
