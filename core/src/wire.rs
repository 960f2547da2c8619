//! bincode's `DefaultOptions` encoding (variable-length integers, little endian), written by
//! hand for the two forms encoded once per event: a checkpoint delta's sample and Redis's
//! latest value. Through serde and bincode's writer each integer went through a generic
//! serializer and a `Vec` reserve per byte (BENCHMARKS §3n); the bytes are the same (the
//! tests compare them with bincode's on random values), and bincode still reads them.
//! Beside them the LEB128 varint and the zigzag step the kernel's compact points and journal
//! use (`window/state/points.rs`, the journal's log in `window/state.rs`).

use crate::telemetry::VehicleStatus;

/// bincode's varint: one byte up to 250, else a marker and 2, 4 or 8 bytes.
pub(crate) fn put_u64(out: &mut Vec<u8>, n: u64) {
    if n <= 250 {
        out.push(n as u8);
    } else if n <= u64::from(u16::MAX) {
        out.push(251);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else if n <= u64::from(u32::MAX) {
        out.push(252);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

/// Reads what [`put_u64`] wrote at `*at`, and moves `*at` past it. Only for bytes this
/// process wrote (a marker bincode never writes panics).
pub(crate) fn get_u64(bytes: &[u8], at: &mut usize) -> u64 {
    let marker = bytes[*at];
    *at += 1;
    let n = match marker {
        0..=250 => return u64::from(marker),
        251 => 2,
        252 => 4,
        253 => 8,
        _ => panic!("not a bincode varint marker: {marker}"),
    };
    let mut le = [0u8; 8];
    le[..n].copy_from_slice(&bytes[*at..*at + n]);
    *at += n;
    u64::from_le_bytes(le)
}

/// LEB128: seven bits a byte, the low ones first, the high bit set on all but the last.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads what [`put_varint`] wrote at `*at`, and moves `*at` past it.
pub(crate) fn get_varint(bytes: &[u8], at: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let b = bytes[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// Signed to unsigned with small magnitudes small: 0, -1, 1, -2, … → 0, 1, 2, 3, …
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// [`zigzag`], then [`put_u64`].
pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, zigzag(v));
}

/// Floats are 8 bytes, little endian, in any of bincode's integer encodings.
pub(crate) fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn put_option_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

/// A unit variant: its index in declaration order.
pub(crate) fn put_status(out: &mut Vec<u8>, s: VehicleStatus) {
    put_u64(out, s as u64);
}

#[cfg(test)]
mod tests {
    use bincode::Options;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn bincode_of<T: serde::Serialize + ?Sized>(v: &T) -> Vec<u8> {
        bincode::DefaultOptions::new().serialize(v).unwrap()
    }

    /// Integers at every width's edges and at random, strings, options and statuses encode
    /// as bincode encodes them.
    #[test]
    fn encodes_as_bincode() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut u: Vec<u64> = vec![0, 1, 250, 251, 252, 253, 255, 256];
        for edge in [u64::from(u16::MAX), u64::from(u32::MAX), u64::MAX] {
            u.extend([edge - 1, edge, edge.saturating_add(1)]);
        }
        u.extend((0..2_000).map(|i| rng.gen::<u64>() >> (i % 64)));
        for n in u {
            let mut out = Vec::new();
            put_u64(&mut out, n);
            assert_eq!(out, bincode_of(&n), "{n}");
            let mut at = 0;
            assert_eq!(
                (get_u64(&out, &mut at), at),
                (n, out.len()),
                "{n} read back"
            );
            let mut leb = Vec::new();
            put_varint(&mut leb, n);
            let mut at = 0;
            assert_eq!(
                (get_varint(&leb, &mut at), at),
                (n, leb.len()),
                "{n} LEB128"
            );
            for v in [n as i64, (n as i64).wrapping_neg(), i64::MIN, i64::MAX] {
                let mut out = Vec::new();
                put_i64(&mut out, v);
                assert_eq!(out, bincode_of(&v), "{v}");
            }
            let f = f64::from_bits(n);
            let mut out = Vec::new();
            put_f64(&mut out, f);
            assert_eq!(out, bincode_of(&f));
        }
        for s in [
            "",
            "a",
            "f001-v0001",
            "clé ß",
            &"x".repeat(300),
            &"y".repeat(70_000),
        ] {
            let mut out = Vec::new();
            put_str(&mut out, s);
            assert_eq!(out, bincode_of(s));
            for o in [None, Some(s)] {
                let mut out = Vec::new();
                put_option_str(&mut out, o);
                assert_eq!(out, bincode_of(&o));
            }
        }
        for s in VehicleStatus::ALL {
            let mut out = Vec::new();
            put_status(&mut out, s);
            assert_eq!(out, bincode_of(&s));
        }
    }
}
