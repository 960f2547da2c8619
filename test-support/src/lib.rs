//! atlasmesh-test-support
