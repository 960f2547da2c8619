//! atlasmesh-pipelines
