//! atlasmesh-sinks
