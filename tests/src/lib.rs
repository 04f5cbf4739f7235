//! Holds no code: the tests in `tests/` check tolerant decoding across all four vendor clients.
