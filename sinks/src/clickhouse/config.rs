use atlasmesh_core::config::ClickHouseConfig;

/// A client for the configured server and database. Validation (RowBinaryWithNamesAndTypes)
/// follows the config: off for ClickHouse 18.16, on for 23+.
pub fn client(cfg: &ClickHouseConfig) -> ::clickhouse::Client {
    let mut c = ::clickhouse::Client::default()
        .with_url(&cfg.url)
        .with_database(&cfg.database)
        .with_user(&cfg.user)
        .with_validation(cfg.validation);
    if !cfg.password.is_empty() {
        c = c.with_password(&cfg.password);
    }
    c
}
