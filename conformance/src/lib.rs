//! The conformance suite (in development).
