//! Shared harness for chatgate black-box tests.
