"""Helpers the tests share: tiny data, the independent plan checker, raw registry fixtures, strategies."""
