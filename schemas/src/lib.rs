//! atlasmesh-schemas
