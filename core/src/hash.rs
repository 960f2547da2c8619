//! Stable hashes: values that are stored or sent elsewhere must not change between builds,
//! processes or languages (unlike `std`'s `DefaultHasher`).

/// FNV-1a, 64 bit (offset basis 0xcbf29ce484222325, prime 0x100000001b3) over the
/// concatenation of `parts`.
pub fn fnv1a64_parts(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a, 64 bit, of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_parts(&[bytes])
}
