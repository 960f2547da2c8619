//! A bounded walk of an Avro datum over its writer schema, before anything is allocated for it.
//!
//! Avro lets a few bytes declare huge collections: an `array<null>` block count of 2^62 costs
//! one varint, and apache-avro's decoder would try to build that many values. [`check`] walks
//! the binary encoding the way a decoder would, without building anything, and refuses:
//!
//! - more than [`Limits::max_values`] values in the datum (every field, item, key and branch
//!   counts one), checked against each block count before its items are walked, so a declared
//!   count is refused without looping over it;
//! - a block whose items need at least one byte each but declares more items than bytes remain;
//! - nesting deeper than [`Limits::max_depth`] (recursive schemas);
//! - anything the schema does not allow (a union or enum index out of range, a boolean that is
//!   not 0 or 1, an `int` out of range, a varint longer than 10 bytes, invalid UTF-8 in a
//!   string, a length past the end);
//! - bytes left over after the datum (a valid record followed by trailing bytes).
//!
//! A datum that passes decodes within memory proportional to its value count.

use std::collections::HashMap;

use apache_avro::schema::{InnerDecimalSchema, Name, NamespaceRef, UuidSchema};
use apache_avro::Schema;

/// What one datum may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Values (fields, items, map entries, union branches) in one datum.
    pub max_values: u64,
    /// Nesting of records, arrays, maps and unions.
    pub max_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_values: 100_000,
            max_depth: 32,
        }
    }
}

/// Named types of a schema (records, enums, fixed), by full name.
pub type Names<'s> = HashMap<Name, &'s Schema>;

/// Checks that `bytes` is exactly one datum of `schema` within `limits`; `Err` says why not.
pub fn check(
    schema: &Schema,
    names: &Names<'_>,
    bytes: &[u8],
    limits: Limits,
) -> Result<(), String> {
    let mut w = Walk::new(bytes, names, limits);
    w.datum(schema, None, 0)?;
    w.finish()
}

/// The cursor of [`check`] over one datum: its primitives are also what the telemetry decoder
/// ([`crate::telemetry`]) reads with, so both accept and refuse exactly the same bytes.
pub(crate) struct Walk<'b, 'n, 's> {
    buf: &'b [u8],
    names: &'n Names<'s>,
    values_left: u64,
    max_depth: u32,
}

impl<'b> Walk<'b, '_, '_> {
    pub(crate) fn new<'n, 's>(
        buf: &'b [u8],
        names: &'n Names<'s>,
        limits: Limits,
    ) -> Walk<'b, 'n, 's> {
        Walk {
            buf,
            names,
            values_left: limits.max_values,
            max_depth: limits.max_depth,
        }
    }

    /// Refuses bytes left over after the datum.
    pub(crate) fn finish(&self) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err(format!("{} trailing bytes after the datum", self.buf.len()));
        }
        Ok(())
    }

    pub(crate) fn take(&mut self, n: u64) -> Result<&'b [u8], String> {
        if n > self.buf.len() as u64 {
            return Err(format!("needs {n} bytes, {} remain", self.buf.len()));
        }
        let (head, tail) = self.buf.split_at(n as usize);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn long(&mut self) -> Result<i64, String> {
        let mut acc: u64 = 0;
        for i in 0..10 {
            let Some((&b, rest)) = self.buf.split_first() else {
                return Err("varint runs past the end".into());
            };
            self.buf = rest;
            if i == 9 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            acc |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((acc >> 1) as i64 ^ -((acc & 1) as i64));
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    pub(crate) fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("int out of range: {v}"))
    }

    pub(crate) fn count(&mut self, n: u64) -> Result<(), String> {
        if n > self.values_left {
            return Err("more values than the configured limit (max_values)".into());
        }
        self.values_left -= n;
        Ok(())
    }

    fn length(&mut self) -> Result<u64, String> {
        let n = self.long()?;
        u64::try_from(n).map_err(|_| format!("negative length {n}"))
    }

    fn bytes(&mut self) -> Result<(), String> {
        let n = self.length()?;
        self.take(n).map(|_| ())
    }

    pub(crate) fn string(&mut self) -> Result<&'b str, String> {
        let n = self.length()?;
        let s = self.take(n)?;
        std::str::from_utf8(s).map_err(|e| format!("string is not UTF-8: {e}"))
    }

    fn fixed(&mut self, size: usize) -> Result<(), String> {
        self.take(size as u64).map(|_| ())
    }

    /// Walks the blocks of an array or map; `item` walks one item.
    pub(crate) fn blocks(
        &mut self,
        min_item_bytes: u64,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let declared = self.long()?;
            if declared == 0 {
                return Ok(());
            }
            let n = declared.unsigned_abs();
            if declared < 0 {
                // A negative count is followed by the block's size in bytes.
                let size = self.length()?;
                if size > self.buf.len() as u64 {
                    return Err(format!("block of {size} bytes, {} remain", self.buf.len()));
                }
            }
            self.count(n)?;
            if n.saturating_mul(min_item_bytes) > self.buf.len() as u64 {
                return Err(format!(
                    "block declares {n} items, only {} bytes remain",
                    self.buf.len()
                ));
            }
            for _ in 0..n {
                item(self)?;
            }
        }
    }

    pub(crate) fn datum(
        &mut self,
        schema: &Schema,
        ns: NamespaceRef<'_>,
        depth: u32,
    ) -> Result<(), String> {
        if depth > self.max_depth {
            return Err(format!(
                "nested deeper than the configured limit ({})",
                self.max_depth
            ));
        }
        self.count(1)?;
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => match self.take(1)?[0] {
                0 | 1 => Ok(()),
                b => Err(format!("boolean byte {b}")),
            },
            Schema::Int | Schema::Date | Schema::TimeMillis => self.int().map(|_| ()),
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.long().map(|_| ()),
            Schema::Float => self.fixed(4),
            Schema::Double => self.fixed(8),
            Schema::Bytes | Schema::BigDecimal => self.bytes(),
            Schema::String => self.string().map(|_| ()),
            Schema::Uuid(UuidSchema::String) => self.string().map(|_| ()),
            Schema::Uuid(UuidSchema::Bytes) => self.bytes(),
            Schema::Uuid(UuidSchema::Fixed(f)) => self.fixed(f.size),
            Schema::Fixed(f) | Schema::Duration(f) => self.fixed(f.size),
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => self.bytes(),
                InnerDecimalSchema::Fixed(f) => self.fixed(f.size),
            },
            Schema::Enum(e) => {
                let i = self.int()?;
                if i < 0 || i as usize >= e.symbols.len() {
                    return Err(format!(
                        "enum {} index {i} out of range",
                        e.name.fullname(None)
                    ));
                }
                Ok(())
            }
            Schema::Union(u) => {
                let i = self.long()?;
                let variant = usize::try_from(i)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| format!("union index {i} out of range"))?;
                self.datum(variant, ns, depth + 1)
            }
            Schema::Record(r) => {
                let full = r.name.fully_qualified_name(ns);
                for f in &r.fields {
                    self.datum(&f.schema, full.namespace(), depth + 1)?;
                }
                Ok(())
            }
            Schema::Array(a) => {
                let min = min_bytes(&a.items, self.names, ns, 0);
                self.blocks(min, |w| w.datum(&a.items, ns, depth + 1))
            }
            Schema::Map(m) => {
                // Every entry has a key: its length takes at least one byte.
                self.blocks(1, |w| {
                    w.string()?;
                    w.datum(&m.types, ns, depth + 1)
                })
            }
            Schema::Ref { name } => {
                let full = name.fully_qualified_name(ns);
                let target = *self
                    .names
                    .get(full.as_ref())
                    .ok_or_else(|| format!("unknown named type {}", full.fullname(None)))?;
                // The reference itself is neither a value nor a level: do not count it twice.
                self.values_left += 1;
                self.datum(target, full.namespace(), depth)
            }
        }
    }
}

/// The fewest bytes one datum of `schema` takes (0 for null, empty records and the like).
fn min_bytes(schema: &Schema, names: &Names<'_>, ns: NamespaceRef<'_>, depth: u32) -> u64 {
    if depth > 8 {
        return 0;
    }
    match schema {
        Schema::Null => 0,
        Schema::Float => 4,
        Schema::Double => 8,
        Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => {
            f.size as u64
        }
        Schema::Decimal(d) => match &d.inner {
            InnerDecimalSchema::Bytes => 1,
            InnerDecimalSchema::Fixed(f) => f.size as u64,
        },
        Schema::Record(r) => {
            let full = r.name.fully_qualified_name(ns);
            r.fields
                .iter()
                .map(|f| min_bytes(&f.schema, names, full.namespace(), depth + 1))
                .fold(0u64, u64::saturating_add)
        }
        Schema::Ref { name } => {
            let full = name.fully_qualified_name(ns);
            names
                .get(full.as_ref())
                .map_or(0, |s| min_bytes(s, names, full.namespace(), depth + 1))
        }
        // Everything else starts with at least one byte (a varint, a length, an index).
        _ => 1,
    }
}

/// A `long` as Avro writes it (zig-zag varint): for crafting and checking raw datums.
pub fn zigzag(v: i64) -> Vec<u8> {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// The named types of `schema` (for [`check`]), as apache-avro resolves them.
pub fn names_of(schema: &Schema) -> Result<Names<'_>, String> {
    apache_avro::schema::ResolvedSchema::try_from(schema)
        .map(|r| r.get_names().clone())
        .map_err(|e| format!("schema does not resolve: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(s: &str) -> Schema {
        Schema::parse_str(s).unwrap()
    }

    fn run(s: &Schema, bytes: &[u8]) -> Result<(), String> {
        check(s, &names_of(s).unwrap(), bytes, Limits::default())
    }

    #[test]
    fn a_valid_record_passes_and_trailing_bytes_do_not() {
        let s = schema(
            r#"{"type":"record","name":"R","fields":[
                {"name":"a","type":"string"},{"name":"b","type":["null","long"]},
                {"name":"c","type":{"type":"array","items":"int"}}]}"#,
        );
        let v = apache_avro::types::Value::Record(vec![
            (
                "a".into(),
                apache_avro::types::Value::String("héllo".into()),
            ),
            (
                "b".into(),
                apache_avro::types::Value::Union(1, Box::new(apache_avro::types::Value::Long(-7))),
            ),
            (
                "c".into(),
                apache_avro::types::Value::Array(vec![apache_avro::types::Value::Int(1); 3]),
            ),
        ]);
        let bytes = apache_avro::writer::datum::GenericDatumWriter::builder(&s)
            .build()
            .unwrap()
            .write_value_to_vec(v)
            .unwrap();
        assert_eq!(run(&s, &bytes), Ok(()));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            run(&s, &longer),
            Err("1 trailing bytes after the datum".into())
        );
        for cut in 0..bytes.len() {
            assert!(run(&s, &bytes[..cut]).is_err(), "truncated at {cut}");
        }
    }

    #[test]
    fn a_declared_bomb_is_refused_before_walking_it() {
        // array<array<null>>: one block of 2^29 inner arrays, each declaring 2^29 nulls.
        let s = schema(r#"{"type":"array","items":{"type":"array","items":"null"}}"#);
        let mut bytes = zigzag(1 << 29);
        bytes.extend(zigzag(1 << 29));
        bytes.extend(zigzag(0));
        let e = run(&s, &bytes).unwrap_err();
        assert!(
            e.contains("max_values") || e.contains("bytes remain"),
            "{e}"
        );
        // Many small blocks of nulls add up to the limit too.
        let s = schema(r#"{"type":"array","items":"null"}"#);
        let mut bytes = Vec::new();
        for _ in 0..100 {
            bytes.extend(zigzag(5_000));
        }
        bytes.extend(zigzag(0));
        assert!(run(&s, &bytes).unwrap_err().contains("max_values"));
        // Items that take bytes cannot be declared past the message's end.
        let s = schema(r#"{"type":"array","items":"long"}"#);
        let mut bytes = zigzag(1_000);
        bytes.extend([0u8; 10]);
        assert!(run(&s, &bytes).unwrap_err().contains("bytes remain"));
        // A negative block count with a byte size beyond the end.
        let mut bytes = zigzag(-2);
        bytes.extend(zigzag(1 << 40));
        assert!(run(&s, &bytes).unwrap_err().contains("remain"));
    }

    #[test]
    fn depth_and_recursion_are_bounded() {
        let s = schema(
            r#"{"type":"record","name":"Node","fields":[
                {"name":"next","type":["null","Node"]}]}"#,
        );
        // 20 levels pass, 40 do not (the default depth is 32; each level is a record and a
        // union).
        let nested = |levels: usize| {
            let mut b = vec![];
            for _ in 0..levels {
                b.extend(zigzag(1));
            }
            b.extend(zigzag(0));
            b
        };
        assert_eq!(run(&s, &nested(10)), Ok(()));
        assert!(run(&s, &nested(40)).unwrap_err().contains("nested deeper"));
    }

    #[test]
    fn malformed_scalars_are_refused() {
        let s = schema(r#"{"type":"enum","name":"E","symbols":["A","B"]}"#);
        assert_eq!(run(&s, &zigzag(1)), Ok(()));
        assert!(run(&s, &zigzag(2)).unwrap_err().contains("out of range"));
        assert!(run(&schema(r#""boolean""#), &[2]).is_err());
        assert!(run(&schema(r#""int""#), &zigzag(i64::from(i32::MAX) + 1)).is_err());
        assert!(run(&schema(r#""long""#), &[0xff; 11]).is_err());
        assert!(run(&schema(r#""string""#), &[4, 0xff, 0xfe]).is_err());
        assert!(run(&schema(r#""string""#), &zigzag(-1)).is_err());
        assert!(run(&schema(r#"["null","string"]"#), &zigzag(5)).is_err());
        assert_eq!(run(&schema(r#""long""#), &zigzag(i64::MIN)), Ok(()));
        assert_eq!(run(&schema(r#""long""#), &zigzag(i64::MAX)), Ok(()));
    }
}
