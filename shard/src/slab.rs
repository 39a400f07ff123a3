//! A bounded slab with generations: stable small integer keys for the
//! shard's connections and backend requests, reused through a free list.
//! It allocates only while growing towards its capacity, never beyond.

/// A key: slot index plus the generation it was handed out at.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Key {
    /// Slot index.
    pub index: u32,
    /// Generation of the slot when the key was made.
    pub gen: u32,
}

#[derive(Debug)]
struct Entry<T> {
    gen: u32,
    val: Option<T>,
}

/// Bounded slab.
#[derive(Debug)]
pub struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
    cap: usize,
}

impl<T> Slab<T> {
    /// A slab holding at most `cap` values (`cap <= u32::MAX`).
    pub fn with_capacity(cap: usize) -> Self {
        assert!(cap <= u32::MAX as usize);
        Slab { entries: Vec::new(), free: Vec::new(), len: 0, cap }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No values?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Insert; gives the value back when full.
    pub fn insert(&mut self, val: T) -> Result<Key, T> {
        if let Some(index) = self.free.pop() {
            let e = &mut self.entries[index as usize];
            debug_assert!(e.val.is_none());
            e.val = Some(val);
            self.len += 1;
            return Ok(Key { index, gen: e.gen });
        }
        if self.entries.len() >= self.cap {
            return Err(val);
        }
        let index = self.entries.len() as u32;
        self.entries.push(Entry { gen: 0, val: Some(val) });
        self.len += 1;
        Ok(Key { index, gen: 0 })
    }

    /// The value under `key`, if it is still the same one.
    pub fn get(&self, key: Key) -> Option<&T> {
        self.entries.get(key.index as usize).filter(|e| e.gen == key.gen).and_then(|e| e.val.as_ref())
    }

    /// Mutable access, if `key` is still current.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.entries.get_mut(key.index as usize).filter(|e| e.gen == key.gen).and_then(|e| e.val.as_mut())
    }

    /// Remove and return the value; the slot's generation moves on, so
    /// `key` (and every copy of it) stops matching.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let e = self.entries.get_mut(key.index as usize).filter(|e| e.gen == key.gen)?;
        let v = e.val.take()?;
        e.gen = e.gen.wrapping_add(1);
        self.free.push(key.index);
        self.len -= 1;
        Some(v)
    }

    /// Number of slot indices in use so far (iterate `0..slots()` with [`Slab::key_at`]).
    pub fn slots(&self) -> usize {
        self.entries.len()
    }

    /// The current key of slot `index`, if it holds a value.
    pub fn key_at(&self, index: usize) -> Option<Key> {
        let e = self.entries.get(index)?;
        e.val.as_ref().map(|_| Key { index: index as u32, gen: e.gen })
    }

    /// Take every value out (in slot order).
    pub fn drain(&mut self) -> Vec<T> {
        let out: Vec<T> = self.entries.iter_mut().filter_map(|e| e.val.take()).collect();
        self.entries.clear();
        self.free.clear();
        self.len = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_reuse() {
        let mut s = Slab::with_capacity(2);
        let a = s.insert("a").unwrap();
        let b = s.insert("b").unwrap();
        assert_eq!(s.insert("c"), Err("c"), "bounded");
        assert_eq!(s.get(a), Some(&"a"));
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.get(a), None, "stale key");
        assert_eq!(s.remove(a), None);
        let c = s.insert("c").unwrap();
        assert_eq!(c.index, a.index, "slot reused");
        assert_ne!(c.gen, a.gen, "with a new generation");
        assert_eq!(s.get(a), None);
        *s.get_mut(c).unwrap() = "C";
        assert_eq!(s.get(c), Some(&"C"));
        assert_eq!(s.len(), 2);
        assert_eq!(s.key_at(b.index as usize), Some(b));
        assert_eq!(s.slots(), 2);
        let mut all = s.drain();
        all.sort();
        assert_eq!(all, vec!["C", "b"]);
        assert!(s.is_empty());
    }

    #[test]
    fn out_of_range_keys_are_none() {
        let mut s: Slab<u8> = Slab::with_capacity(4);
        let k = Key { index: 99, gen: 0 };
        assert_eq!(s.get(k), None);
        assert_eq!(s.get_mut(k), None);
        assert_eq!(s.remove(k), None);
        assert_eq!(s.key_at(99), None);
    }
}
