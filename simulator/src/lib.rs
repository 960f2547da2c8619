//! atlasmesh-simulator
