//! Field validation of command bodies: every bad field is reported with its reason, so the API
//! can answer one 422 naming all of them and the worker can reject a replayed bad command.

use std::collections::BTreeMap;

use chrono::DateTime;

/// Field name → reason.
pub type Fields = BTreeMap<String, String>;

/// Value checks of a body beyond its shape (serde already refused unknown fields and types).
pub trait Validate {
    fn validate(&self) -> Result<(), Fields>;
}

/// Maximum length of an id (fleet, entity, vehicle, resource ids).
pub const MAX_ID_LEN: usize = 128;

/// Collects the reasons of every bad field.
#[derive(Debug, Default)]
pub struct Check(Fields);

impl Check {
    pub fn new() -> Check {
        Check::default()
    }

    /// Records a failure (the first reason of a field wins).
    pub fn fail(&mut self, name: &str, reason: impl Into<String>) {
        self.0
            .entry(name.to_string())
            .or_insert_with(|| reason.into());
    }

    /// An identifier: 1..=128 characters of `A-Z a-z 0-9 . _ : -`.
    pub fn id(&mut self, name: &str, v: &str) {
        if v.is_empty() || v.len() > MAX_ID_LEN {
            self.fail(name, format!("must be 1 to {MAX_ID_LEN} characters"));
        } else if !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            self.fail(name, "may contain only letters, digits and . _ : -");
        }
    }

    pub fn opt_id(&mut self, name: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.id(name, v);
        }
    }

    /// Non-blank text of at most `max` characters.
    pub fn text(&mut self, name: &str, v: &str, max: usize) {
        if v.trim().is_empty() {
            self.fail(name, "must not be blank");
        } else if v.chars().count() > max {
            self.fail(name, format!("must be at most {max} characters"));
        }
    }

    pub fn opt_text(&mut self, name: &str, v: Option<&str>, max: usize) {
        if let Some(v) = v {
            self.text(name, v, max);
        }
    }

    /// A finite number in `lo..=hi`.
    pub fn range(&mut self, name: &str, v: f64, lo: f64, hi: f64) {
        if !v.is_finite() {
            self.fail(name, "must be a finite number");
        } else if v < lo || v > hi {
            self.fail(name, format!("must be between {lo} and {hi}"));
        }
    }

    pub fn opt_range(&mut self, name: &str, v: Option<f64>, lo: f64, hi: f64) {
        if let Some(v) = v {
            self.range(name, v, lo, hi);
        }
    }

    /// A finite number of at least `lo`.
    pub fn at_least(&mut self, name: &str, v: f64, lo: f64) {
        if !v.is_finite() {
            self.fail(name, "must be a finite number");
        } else if v < lo {
            self.fail(name, format!("must be at least {lo}"));
        }
    }

    pub fn opt_at_least(&mut self, name: &str, v: Option<f64>, lo: f64) {
        if let Some(v) = v {
            self.at_least(name, v, lo);
        }
    }

    pub fn opt_finite(&mut self, name: &str, v: Option<f64>) {
        if let Some(v) = v {
            self.finite(name, v);
        }
    }

    /// Any finite number.
    pub fn finite(&mut self, name: &str, v: f64) {
        if !v.is_finite() {
            self.fail(name, "must be a finite number");
        }
    }

    /// An integer in `lo..=hi`.
    pub fn int(&mut self, name: &str, v: i64, lo: i64, hi: i64) {
        if v < lo || v > hi {
            self.fail(name, format!("must be between {lo} and {hi}"));
        }
    }

    pub fn opt_int(&mut self, name: &str, v: Option<i64>, lo: i64, hi: i64) {
        if let Some(v) = v {
            self.int(name, v, lo, hi);
        }
    }

    /// An RFC 3339 instant; returns it in epoch milliseconds when valid.
    pub fn time(&mut self, name: &str, v: &str) -> Option<i64> {
        match crate::clock::parse_rfc3339(v) {
            Some(ms) => Some(ms),
            None => {
                self.fail(
                    name,
                    "must be an RFC 3339 instant, e.g. 2024-05-01T10:00:00Z",
                );
                None
            }
        }
    }

    pub fn opt_time(&mut self, name: &str, v: Option<&str>) -> Option<i64> {
        v.and_then(|v| self.time(name, v))
    }

    /// `start` strictly before `end` when both are known.
    pub fn before(&mut self, end_name: &str, start: Option<i64>, end: Option<i64>) {
        if let (Some(s), Some(e)) = (start, end) {
            if e <= s {
                self.fail(end_name, "must be after the start");
            }
        }
    }

    /// `period_start` and `period_end`, RFC 3339, the end after the start; returns both in epoch
    /// milliseconds when valid.
    pub fn period(&mut self, start: &str, end: &str) -> Option<(i64, i64)> {
        let s = self.time("period_start", start);
        let e = self.time("period_end", end);
        self.before("period_end", s, e);
        s.zip(e).filter(|(s, e)| e > s)
    }

    /// One of `allowed`.
    pub fn one_of(&mut self, name: &str, v: &str, allowed: &[&str]) {
        if !allowed.contains(&v) {
            self.fail(name, format!("must be one of {}", allowed.join(", ")));
        }
    }

    pub fn finish(self) -> Result<(), Fields> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// Epoch milliseconds as RFC 3339 UTC with milliseconds (`2024-05-01T10:00:00.000Z`).
pub fn format_time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The path of the first string or key in `v` (at any depth) that contains a NUL character,
/// e.g. `name` or `tags[2]`; PostgreSQL stores NUL neither in text nor in jsonb, so every body
/// and payload is refused with this field named rather than failing in the store.
pub fn json_nul_field(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    fn walk(v: &Value, path: &str) -> Option<String> {
        let here = || {
            if path.is_empty() {
                "body".to_string()
            } else {
                path.to_string()
            }
        };
        match v {
            Value::String(s) => s.contains('\0').then(here),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, x)| walk(x, &format!("{path}[{i}]"))),
            Value::Object(m) => m.iter().find_map(|(k, x)| {
                let p = if path.is_empty() {
                    k.escape_debug().to_string()
                } else {
                    format!("{path}.{}", k.escape_debug())
                };
                if k.contains('\0') {
                    Some(p)
                } else {
                    walk(x, &p)
                }
            }),
            _ => None,
        }
    }
    walk(v, "")
}

/// Renders `fields` as one line (`a: reason; b: reason`), for rejection reasons.
pub fn describe(fields: &Fields) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nul_in_json_text() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"a": "ok", "b": {"c": ["x", "y\u0000"]}}"#).unwrap();
        assert_eq!(json_nul_field(&v).as_deref(), Some("b.c[1]"));
        let k: serde_json::Value = serde_json::from_str(r#"{"k\u0000": 1}"#).unwrap();
        assert_eq!(json_nul_field(&k).as_deref(), Some("k\\0"));
        let clean: serde_json::Value = serde_json::from_str(r#"{"a": ["b", 1, null]}"#).unwrap();
        assert_eq!(json_nul_field(&clean), None);
    }

    #[test]
    fn collects_every_bad_field() {
        let mut c = Check::new();
        c.id("fleet_id", "fleet a");
        c.id("pool_id", "");
        c.text("name", "  ", 10);
        c.range("score", f64::NAN, 0.0, 100.0);
        c.int("amount", 0, 1, 10);
        let s = c.time("starts_at", "2024-05-01T10:00:00Z");
        let e = c.time("ends_at", "2024-05-01T09:00:00+00:00");
        c.before("ends_at", s, e);
        c.one_of("kind", "x", &["a", "b"]);
        let f = c.finish().unwrap_err();
        assert_eq!(
            f.keys().map(String::as_str).collect::<Vec<_>>(),
            ["amount", "ends_at", "fleet_id", "kind", "name", "pool_id", "score"]
        );
        assert_eq!(describe(&f).matches("; ").count(), 6);
    }

    #[test]
    fn good_values_pass() {
        let mut c = Check::new();
        c.id("fleet_id", "fleet-001:a_b.c");
        c.text("name", "Depot A", 10);
        c.range("score", 100.0, 0.0, 100.0);
        let s = c.time("s", "2024-05-01T10:00:00Z");
        let e = c.time("e", "2024-05-01T12:00:00+01:00");
        c.before("e", s, e);
        c.opt_time("none", None);
        assert!(c.finish().is_ok());
        assert_eq!(
            crate::clock::parse_rfc3339("2024-05-01T10:00:00.250Z"),
            Some(1_714_557_600_250)
        );
        assert_eq!(crate::clock::parse_rfc3339("yesterday"), None);
        assert_eq!(format_time(1_714_557_600_250), "2024-05-01T10:00:00.250Z");
        assert_eq!(
            crate::clock::parse_rfc3339(&format_time(1_714_557_600_250)),
            Some(1_714_557_600_250)
        );
    }
}
