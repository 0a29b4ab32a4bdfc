//! The in-memory map with LRU order and expiry, in plain Rust (no PyO3: payloads are opaque here).
//!
//! Nodes live in one slab (`Vec`) linked into a recency list by `u32` indices, and a `hashbrown`
//! table of indices finds them by key bytes. Keys up to 22 bytes are stored inline, so a typical
//! memoized call costs one slab slot and four bytes of table, and no allocation of its own.
//! Keys start with a 4-byte group id (the function); per-group counts back `cache_info().currsize`.

use std::hash::BuildHasher;

use hashbrown::HashTable;

const NIL: u32 = u32::MAX;
const INLINE: usize = 22;

/// Key bytes, inline when short.
#[derive(Clone)]
pub enum CompactKey {
    Inline { len: u8, data: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl CompactKey {
    pub fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..bytes.len()].copy_from_slice(bytes);
            CompactKey::Inline {
                len: bytes.len() as u8,
                data,
            }
        } else {
            CompactKey::Heap(bytes.into())
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match self {
            CompactKey::Inline { len, data } => &data[..*len as usize],
            CompactKey::Heap(b) => b,
        }
    }

    /// The group id written in the first four bytes.
    #[inline]
    pub fn group(&self) -> u32 {
        group_of(self.as_slice())
    }
}

#[inline]
pub fn group_of(key: &[u8]) -> u32 {
    key.get(..4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

struct Node<V> {
    key: CompactKey,
    value: Option<V>,
    prev: u32,
    next: u32,
    /// Expiry on the store's clock in nanoseconds; 0 means never.
    expires: u64,
}

/// What `insert` displaced: the old value under the same key, entries evicted for room, and expired
/// entries swept to make room (those are expirations, not evictions).
pub struct Displaced<V> {
    pub replaced: Option<V>,
    pub evicted: Vec<V>,
    pub expired: Vec<V>,
}

/// An LRU map from byte keys to `V`, with optional capacity and per-entry expiry.
pub struct Lru<V> {
    table: HashTable<u32>,
    nodes: Vec<Node<V>>,
    free: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used (the next to evict).
    tail: u32,
    len: usize,
    max_size: Option<usize>,
    hasher: foldhash::fast::RandomState,
    group_counts: Vec<u32>,
    /// A lower bound of every live expiry (u64::MAX when none): while `now` is below it nothing has
    /// expired, so a full sweep is skipped.
    min_expires: u64,
}

impl<V> Lru<V> {
    pub fn new(max_size: Option<usize>) -> Self {
        Lru {
            table: HashTable::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
            max_size,
            hasher: foldhash::fast::RandomState::default(),
            group_counts: Vec::new(),
            min_expires: u64::MAX,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn max_size(&self) -> Option<usize> {
        self.max_size
    }

    pub fn group_count(&self, group: u32) -> usize {
        self.group_counts.get(group as usize).map_or(0, |&c| c as usize)
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn find(&self, key: &[u8]) -> Option<u32> {
        let nodes = &self.nodes;
        self.table
            .find(self.hash(key), |&i| nodes[i as usize].key.as_slice() == key)
            .copied()
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        let old_head = self.head;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = NIL;
            n.next = old_head;
        }
        if old_head == NIL {
            self.tail = i;
        } else {
            self.nodes[old_head as usize].prev = i;
        }
        self.head = i;
    }

    fn touch(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    /// Removes node `i` from table, list and slab; returns its value.
    fn remove_index(&mut self, i: u32) -> V {
        let hash = self.hash(self.nodes[i as usize].key.as_slice());
        if let Ok(entry) = self.table.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        self.unlink(i);
        let node = &mut self.nodes[i as usize];
        let value = node.value.take().expect("live node has a value");
        let group = node.key.group() as usize;
        node.key = CompactKey::Inline {
            len: 0,
            data: [0; INLINE],
        };
        node.expires = 0;
        if let Some(c) = self.group_counts.get_mut(group) {
            *c = c.saturating_sub(1);
        }
        self.free.push(i);
        self.len -= 1;
        value
    }

    fn is_expired(&self, i: u32, now: impl Fn() -> u64) -> bool {
        let e = self.nodes[i as usize].expires;
        e != 0 && now() >= e
    }

    /// Looks `key` up; a hit becomes the most recently used. An expired entry is removed and reported as
    /// `Lookup::Expired` with its value (to be dropped by the caller outside any lock).
    pub fn get(&mut self, key: &[u8], now: impl Fn() -> u64) -> Lookup<'_, V> {
        let Some(i) = self.find(key) else { return Lookup::Miss };
        if self.is_expired(i, now) {
            return Lookup::Expired(self.remove_index(i));
        }
        self.touch(i);
        Lookup::Hit(self.nodes[i as usize].value.as_ref().expect("live node has a value"))
    }

    /// A live entry becomes the most recently used and is returned; an expired one is left in place
    /// (for a caller that must not drop values, see `MemoryStore::lookup_hit`).
    /// `margin` (ns): the entry must also live that much longer (0: merely live).
    pub fn get_live(&mut self, key: &[u8], now: impl Fn() -> u64, margin: u64) -> Option<&V> {
        let i = self.find(key)?;
        if self.is_expired(i, || now().saturating_add(margin)) {
            return None;
        }
        self.touch(i);
        self.nodes[i as usize].value.as_ref()
    }

    /// Like `get` but neither counts as a use nor removes expired entries.
    pub fn peek(&self, key: &[u8], now: impl Fn() -> u64) -> Option<&V> {
        let i = self.find(key)?;
        if self.is_expired(i, now) {
            return None;
        }
        self.nodes[i as usize].value.as_ref()
    }

    /// Inserts or replaces; `expires` is 0 for no expiry. Evicts least recently used entries past capacity
    /// (expired entries first: they never take room from live ones).
    pub fn insert(&mut self, key: &[u8], value: V, expires: u64, now: impl Fn() -> u64) -> Displaced<V> {
        let mut displaced = Displaced {
            replaced: None,
            evicted: Vec::new(),
            expired: Vec::new(),
        };
        if expires != 0 {
            self.min_expires = self.min_expires.min(expires);
        }
        if let Some(i) = self.find(key) {
            let node = &mut self.nodes[i as usize];
            displaced.replaced = node.value.replace(value);
            node.expires = expires;
            self.touch(i);
            return displaced;
        }
        if let Some(max) = self.max_size {
            if self.len >= max {
                self.purge_expired(&now, &mut displaced.expired);
            }
            while self.len >= max && self.tail != NIL {
                let victim = self.tail;
                displaced.evicted.push(self.remove_index(victim));
            }
            if max == 0 {
                displaced.evicted.push(value);
                return displaced;
            }
        }
        let compact = CompactKey::new(key);
        let group = compact.group() as usize;
        let node = Node {
            key: compact,
            value: Some(value),
            prev: NIL,
            next: NIL,
            expires,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let hash = self.hash(key);
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        self.table
            .insert_unique(hash, i, |&j| hasher.hash_one(nodes[j as usize].key.as_slice()));
        self.push_front(i);
        if self.group_counts.len() <= group {
            self.group_counts.resize(group + 1, 0);
        }
        self.group_counts[group] += 1;
        self.len += 1;
        displaced
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let i = self.find(key)?;
        Some(self.remove_index(i))
    }

    /// Removes every expired entry (when any can have expired) and appends their values to `out`.
    /// Returns how many were removed.
    pub fn purge_expired(&mut self, now: &impl Fn() -> u64, out: &mut Vec<V>) -> usize {
        if self.min_expires == u64::MAX {
            return 0;
        }
        let now = now();
        if now < self.min_expires {
            return 0;
        }
        let mut removed = 0;
        let mut min = u64::MAX;
        let mut i = self.tail;
        while i != NIL {
            let (prev, expires) = {
                let n = &self.nodes[i as usize];
                (n.prev, n.expires)
            };
            if expires != 0 {
                if now >= expires {
                    out.push(self.remove_index(i));
                    removed += 1;
                } else {
                    min = min.min(expires);
                }
            }
            i = prev;
        }
        self.min_expires = min;
        removed
    }

    /// Removes every entry of `group`; returns the values.
    pub fn remove_group(&mut self, group: u32) -> Vec<V> {
        let mut out = Vec::new();
        let mut i = self.tail;
        while i != NIL {
            let prev = self.nodes[i as usize].prev;
            if self.nodes[i as usize].key.group() == group {
                out.push(self.remove_index(i));
            }
            i = prev;
        }
        out
    }

    /// Takes everything out, leaving an empty map with the same capacity setting.
    pub fn take_all(&mut self) -> Vec<V> {
        let out = self.nodes.drain(..).filter_map(|n| n.value).collect();
        *self = Lru::new(self.max_size);
        out
    }

    /// Live entries, least recently used first (for iteration and inspection).
    pub fn iter(&self, now: impl Fn() -> u64) -> impl Iterator<Item = (&[u8], &V)> {
        let now = now();
        let mut i = self.tail;
        std::iter::from_fn(move || {
            while i != NIL {
                let n = &self.nodes[i as usize];
                i = n.prev;
                if n.expires == 0 || now < n.expires {
                    return Some((n.key.as_slice(), n.value.as_ref().expect("live node has a value")));
                }
            }
            None
        })
    }

    /// Every stored value, expired or not (for the garbage collector's traversal).
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.nodes.iter().filter_map(|n| n.value.as_ref())
    }
}

pub enum Lookup<'a, V> {
    Hit(&'a V),
    Expired(V),
    Miss,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: u32, tail: &str) -> Vec<u8> {
        let mut k = group.to_le_bytes().to_vec();
        k.extend_from_slice(tail.as_bytes());
        k
    }

    fn never() -> u64 {
        0
    }

    #[test]
    fn get_insert_replace_remove() {
        let mut lru = Lru::new(None);
        assert!(matches!(lru.get(&key(0, "a"), never), Lookup::Miss));
        assert!(lru.insert(&key(0, "a"), 1, 0, never).replaced.is_none());
        assert_eq!(lru.insert(&key(0, "a"), 2, 0, never).replaced, Some(1));
        assert!(matches!(lru.get(&key(0, "a"), never), Lookup::Hit(&2)));
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.remove(&key(0, "a")), Some(2));
        assert!(lru.is_empty());
        assert_eq!(lru.remove(&key(0, "a")), None);
    }

    #[test]
    fn long_keys_live_on_the_heap() {
        let mut lru = Lru::new(None);
        let long = key(0, &"x".repeat(100));
        lru.insert(&long, 7, 0, never);
        assert!(matches!(lru.get(&long, never), Lookup::Hit(&7)));
        assert!(matches!(lru.get(&long[..50], never), Lookup::Miss));
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut lru = Lru::new(Some(2));
        lru.insert(&key(0, "a"), 1, 0, never);
        lru.insert(&key(0, "b"), 2, 0, never);
        assert!(matches!(lru.get(&key(0, "a"), never), Lookup::Hit(_))); // b is now the LRU
        let d = lru.insert(&key(0, "c"), 3, 0, never);
        assert_eq!(d.evicted, vec![2]);
        assert!(matches!(lru.get(&key(0, "b"), never), Lookup::Miss));
        assert_eq!(lru.len(), 2);
        let order: Vec<i32> = lru.iter(never).map(|(_, v)| *v).collect();
        assert_eq!(order, vec![1, 3]);
    }

    #[test]
    fn expired_entries_do_not_take_room() {
        let mut lru = Lru::new(Some(2));
        lru.insert(&key(0, "old"), 1, 10, || 0);
        lru.insert(&key(0, "live"), 2, 0, || 0);
        // At t=20 the first entry has expired: inserting a third evicts it, not the live one.
        let d = lru.insert(&key(0, "new"), 3, 0, || 20);
        assert_eq!(d.expired, vec![1]);
        assert!(d.evicted.is_empty());
        assert!(matches!(lru.get(&key(0, "live"), || 20), Lookup::Hit(&2)));
    }

    #[test]
    fn expiry_on_get() {
        let mut lru = Lru::new(None);
        lru.insert(&key(0, "a"), 1, 100, || 0);
        assert!(matches!(lru.get(&key(0, "a"), || 99), Lookup::Hit(&1)));
        assert!(matches!(lru.get(&key(0, "a"), || 100), Lookup::Expired(1)));
        assert!(lru.is_empty());
    }

    #[test]
    fn groups_are_counted_and_removed() {
        let mut lru = Lru::new(None);
        lru.insert(&key(1, "a"), 1, 0, never);
        lru.insert(&key(2, "a"), 2, 0, never);
        lru.insert(&key(1, "b"), 3, 0, never);
        assert_eq!(lru.group_count(1), 2);
        let mut removed = lru.remove_group(1);
        removed.sort();
        assert_eq!(removed, vec![1, 3]);
        assert_eq!(lru.group_count(1), 0);
        assert_eq!(lru.len(), 1);
    }

    #[test]
    fn slots_are_reused() {
        let mut lru = Lru::new(None);
        for round in 0..3 {
            for i in 0..100 {
                lru.insert(&key(0, &i.to_string()), round * 1000 + i, 0, never);
            }
            for i in 0..100 {
                assert_eq!(lru.remove(&key(0, &i.to_string())), Some(round * 1000 + i));
            }
        }
        assert!(lru.nodes.len() <= 100);
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let mut lru = Lru::new(Some(0));
        let d = lru.insert(&key(0, "a"), 1, 0, never);
        assert_eq!(d.evicted, vec![1]);
        assert!(lru.is_empty());
    }
}
