"""Helpers the tests share: one place each, imported by the test modules (never one test
module from another)."""
