//! Vehicle and fleet ids as the kernel keeps them: inline when short (up to 22 bytes, as
//! real ids are), so finding an event's vehicle and checking its fleet read the bytes from
//! the map's own slot instead of following a pointer to a cold heap block each
//! (BENCHMARKS §3n). Same size as a `String`; serialised as a string, so the checkpoint
//! bytes do not change.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const INLINE: usize = 22;

#[derive(Clone)]
pub(crate) enum Id {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Id {
    pub fn new(s: &str) -> Id {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Id::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Id::Heap(s.into())
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Id::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Id::Heap(s) => s.as_bytes(),
        }
    }

    /// The id (checked UTF-8 again when inline: it was a `str` when it came in).
    pub fn as_str(&self) -> &str {
        match self {
            Id::Inline { .. } => std::str::from_utf8(self.as_bytes()).expect("built from a str"),
            Id::Heap(s) => s,
        }
    }

    /// Bytes allocated outside the id itself.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Id::Inline { .. } => 0,
            Id::Heap(s) => s.len(),
        }
    }
}

impl Default for Id {
    fn default() -> Id {
        Id::new("")
    }
}

/// Looked up by the bytes of a `str` (the hash and the equality are the bytes').
impl Borrow<[u8]> for Id {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Hash for Id {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Id) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Id {}

impl PartialEq<str> for Id {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// The order of the strings (UTF-8 bytes sort as their code points).
impl Ord for Id {
    fn cmp(&self, other: &Id) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl PartialOrd for Id {
    fn partial_cmp(&self, other: &Id) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        Ok(Id::new(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_behave_as_their_strings() {
        assert_eq!(std::mem::size_of::<Id>(), std::mem::size_of::<String>());
        let texts = [
            "",
            "f001-v0001",
            "é",
            &"x".repeat(22),
            &"y".repeat(23),
            "vé\r\n1",
        ];
        for a in texts {
            let id = Id::new(a);
            assert_eq!(id.as_str(), a);
            assert_eq!(id.heap_bytes(), if a.len() > 22 { a.len() } else { 0 });
            // Serialised as the string, both ways.
            let bytes = bincode::serialize(&id).unwrap();
            assert_eq!(bytes, bincode::serialize(a).unwrap());
            assert_eq!(bincode::deserialize::<Id>(&bytes).unwrap(), id);
            for b in texts {
                assert_eq!(Id::new(a).cmp(&Id::new(b)), a.cmp(b), "{a:?} {b:?}");
                assert_eq!(Id::new(a) == Id::new(b), a == b);
            }
        }
        // Found in a map by the str's bytes.
        let mut m: hashbrown::HashMap<Id, u32> = Default::default();
        for (i, t) in texts.iter().enumerate() {
            m.insert(Id::new(t), i as u32);
        }
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(m.get(t.as_bytes()), Some(&(i as u32)));
        }
    }
}
