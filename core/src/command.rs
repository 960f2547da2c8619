//! Commands: what a write request becomes (see fleet.commands.v1).

/// A stable fingerprint of a request (kind + canonical JSON payload), stored with the command
/// so that reusing an idempotency key for a different request can be refused. FNV-1a 64:
/// stable across builds and processes (unlike `DefaultHasher`).
pub fn request_hash(kind: &str, canonical_payload: &str) -> String {
    format!(
        "{:016x}",
        crate::hash::fnv1a64_parts(&[kind.as_bytes(), &[0], canonical_payload.as_bytes()])
    )
}

/// The fingerprint of a request whose payload is JSON text; key order does not matter.
pub fn request_hash_json(kind: &str, payload_json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(payload_json) {
        Ok(v) => request_hash_value(kind, &v),
        Err(_) => request_hash(kind, payload_json),
    }
}

/// The fingerprint of a request whose payload is already parsed (same value as
/// [`request_hash_json`] of its text).
pub fn request_hash_value(kind: &str, payload: &serde_json::Value) -> String {
    let mut out = String::new();
    canonical(payload, &mut out);
    request_hash(kind, &out)
}

/// JSON text with object keys sorted, whatever map type serde_json was built with.
fn canonical(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

// The resource and operation of a kind: `crate::domain::split_kind`.

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_discriminating() {
        // Pinned value: the hash is stored in PostgreSQL and must not change between builds.
        assert_eq!(request_hash("", ""), "af63bd4c8601b7df");
        assert_eq!(
            request_hash("a.create", "{}"),
            request_hash("a.create", "{}")
        );
        assert_ne!(
            request_hash("a.create", "{}"),
            request_hash("a.update", "{}")
        );
        assert_ne!(
            request_hash("a.create", "{\"x\":1}"),
            request_hash("a.create", "{\"x\":2}")
        );
    }

    #[test]
    fn key_order_does_not_matter() {
        assert_eq!(
            request_hash_json("k", r#"{"a":1,"b":{"y":[1,{"q":2,"p":1}],"x":2}}"#),
            request_hash_json("k", r#"{"b":{"x":2,"y":[1,{"p":1,"q":2}]},"a":1}"#)
        );
        assert_ne!(
            request_hash_json("k", r#"{"a":[1,2]}"#),
            request_hash_json("k", r#"{"a":[2,1]}"#)
        );
        let text = r#"{"b":{"x":2},"a":[1,"z"]}"#;
        assert_eq!(
            request_hash_value("k", &serde_json::from_str(text).unwrap()),
            request_hash_json("k", text)
        );
    }
}
