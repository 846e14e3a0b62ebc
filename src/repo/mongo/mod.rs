//! The MongoDB backend (arrives with its own issue).
