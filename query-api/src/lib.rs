//! atlasmesh-query-api
