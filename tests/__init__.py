"""The test suite, one package per stage of allocator; shared helpers in tests.support."""
