use atlasmesh_core::config::ClickHouseConfig;

/// A client for the configured server and database. Validation (RowBinaryWithNamesAndTypes)
/// follows the config: off for ClickHouse 18.16, on for 23+; so does compression
/// (`clickhouse.compression`, none on loopback by default).
pub fn client(cfg: &ClickHouseConfig) -> ::clickhouse::Client {
    let compression = if cfg.lz4() {
        ::clickhouse::Compression::Lz4
    } else {
        ::clickhouse::Compression::None
    };
    let mut c = ::clickhouse::Client::default()
        .with_url(&cfg.url)
        .with_database(&cfg.database)
        .with_user(&cfg.user)
        .with_validation(cfg.validation)
        .with_compression(compression);
    if !cfg.password.is_empty() {
        c = c.with_password(&cfg.password);
    }
    c
}
