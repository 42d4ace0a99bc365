//! The entry store in a shared memory zone: an rbtree indexed by key digest
//! and two LRU queues, all in one slab allocation per entry.
//!
//! Every operation takes the slab pool's mutex, does pointer work and
//! copies, and releases the mutex before returning. Nothing inside the
//! critical section logs, waits or can panic: there is no indexing, no
//! `unwrap`, and the only allocation is a `Vec` growth that aborts on
//! failure. If a worker dies holding the mutex anyway, the master process
//! releases it.

use core::mem::{offset_of, size_of};
use core::ptr;

use nginx_sys::{
    ngx_queue_init, ngx_queue_insert_after, ngx_queue_remove, ngx_queue_t, ngx_rbt_red,
    ngx_rbtree_delete, ngx_rbtree_init, ngx_rbtree_insert, ngx_rbtree_node_t, ngx_rbtree_t,
    ngx_shmtx_lock, ngx_shmtx_unlock, ngx_slab_alloc_locked, ngx_slab_free_locked, ngx_slab_pool_t,
};

use super::key::KeyDigest;
use super::policy::{refresh_due, Kind};

/// Marks the layout of this file's structures. A zone reused across a reload
/// with a module whose layout differs is rejected instead of misread.
pub const LAYOUT_MAGIC: u64 = u64::from_be_bytes(*b"agcache1");

/// How many entries one allocation may evict before it gives up.
const MAX_EVICTIONS: usize = 256;

/// How many entries from the end of each LRU queue are searched for an
/// expired one before live entries are evicted.
const EXPIRED_SCAN: usize = 16;

/// The zone's index, allocated once in the slab pool.
#[repr(C)]
pub struct ZoneHeader {
    pub magic: u64,
    rbtree: ngx_rbtree_t,
    sentinel: ngx_rbtree_node_t,
    /// Valid sessions, most recently used first.
    protected: ngx_queue_t,
    /// Invalid, empty and pending answers, most recently used first.
    ordinary: ngx_queue_t,
    /// When the last "zone is full" warning was logged, in milliseconds.
    last_full_warning: u64,
    pub entries: u64,
}

/// One cached answer. The encoded identity follows the struct in the same
/// slab allocation.
#[repr(C)]
struct Entry {
    /// The rbtree key is the first 8 bytes of the digest.
    node: ngx_rbtree_node_t,
    queue: ngx_queue_t,
    /// The remaining 24 bytes of the digest.
    digest_tail: [u8; 24],
    /// When the entry stops being fresh, on nginx's monotonic clock in ms.
    expires: u64,
    /// While in the future, one request is resolving this key and others
    /// wait for it, or it is being refreshed in the background.
    locked_until: u64,
    /// The lifetime the entry was stored with, in ms.
    lifetime: u64,
    len: u32,
    kind: u8,
}

/// The result of a lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A fresh entry. With `refresh`, the caller holds the refresh lock and
    /// must refresh it in the background.
    Fresh {
        data: Vec<u8>,
        kind: Kind,
        refresh: bool,
    },
    /// An expired entry, kept for serving stale. With `locked`, the caller
    /// holds the lock and others wait for its answer.
    Expired {
        data: Vec<u8>,
        expires: u64,
        locked: bool,
    },
    /// Another request is resolving this key.
    Wait,
    /// No entry. With `locked`, the caller holds the lock.
    Miss { locked: bool },
}

fn split_digest(digest: &KeyDigest) -> (usize, [u8; 24]) {
    let mut head = [0u8; 8];
    let mut tail = [0u8; 24];
    let (first, rest) = digest.split_at(8);
    head.copy_from_slice(first);
    tail.copy_from_slice(rest);
    (u64::from_be_bytes(head) as usize, tail)
}

/// Inserts an entry into the rbtree, ordering equal keys by digest tail.
unsafe extern "C" fn insert_entry(
    mut temp: *mut ngx_rbtree_node_t,
    node: *mut ngx_rbtree_node_t,
    sentinel: *mut ngx_rbtree_node_t,
) {
    let slot = loop {
        let slot: *mut *mut ngx_rbtree_node_t = if (*node).key < (*temp).key {
            &mut (*temp).left
        } else if (*node).key > (*temp).key {
            &mut (*temp).right
        } else if (*node.cast::<Entry>()).digest_tail < (*temp.cast::<Entry>()).digest_tail {
            &mut (*temp).left
        } else {
            &mut (*temp).right
        };
        if *slot == sentinel {
            break slot;
        }
        temp = *slot;
    };
    *slot = node;
    (*node).parent = temp;
    (*node).left = sentinel;
    (*node).right = sentinel;
    ngx_rbt_red(node);
}

unsafe fn entry_of_queue(queue: *mut ngx_queue_t) -> *mut Entry {
    queue.cast::<u8>().sub(offset_of!(Entry, queue)).cast()
}

unsafe fn entry_data(entry: *mut Entry) -> *mut u8 {
    entry.cast::<u8>().add(size_of::<Entry>())
}

/// Initialises a new zone header in `header`.
///
/// # Safety
/// `header` must point to writable memory for a `ZoneHeader` in the zone.
pub unsafe fn init_header(header: *mut ZoneHeader) {
    ptr::write_bytes(header, 0, 1);
    (*header).magic = LAYOUT_MAGIC;
    ngx_rbtree_init(
        ptr::addr_of_mut!((*header).rbtree),
        ptr::addr_of_mut!((*header).sentinel),
        Some(insert_entry),
    );
    ngx_queue_init(ptr::addr_of_mut!((*header).protected));
    ngx_queue_init(ptr::addr_of_mut!((*header).ordinary));
}

/// The zone with its mutex held. Dropping it releases the mutex.
pub struct Locked {
    shpool: *mut ngx_slab_pool_t,
    header: *mut ZoneHeader,
    /// Set when an allocation evicted live entries and no "zone is full"
    /// warning was due in the last minute. The caller logs it after the
    /// mutex is released.
    warn_full: bool,
}

impl Locked {
    /// Takes the zone's mutex.
    ///
    /// # Safety
    /// `shpool` and `header` must be the slab pool and header of a live zone.
    pub unsafe fn lock(shpool: *mut ngx_slab_pool_t, header: *mut ZoneHeader) -> Locked {
        ngx_shmtx_lock(ptr::addr_of_mut!((*shpool).mutex));
        Locked {
            shpool,
            header,
            warn_full: false,
        }
    }

    /// Reports whether a "zone is full" warning is due.
    pub fn warn_full(&self) -> bool {
        self.warn_full
    }

    unsafe fn note_full(&mut self, now: u64) {
        let last = (*self.header).last_full_warning;
        if last == 0 || now.saturating_sub(last) >= 60_000 {
            (*self.header).last_full_warning = now.max(1);
            self.warn_full = true;
        }
    }

    unsafe fn find(&self, digest: &KeyDigest) -> *mut Entry {
        let (key, tail) = split_digest(digest);
        let sentinel = (*self.header).rbtree.sentinel;
        let mut node = (*self.header).rbtree.root;
        while node != sentinel {
            if key < (*node).key {
                node = (*node).left;
                continue;
            }
            if key > (*node).key {
                node = (*node).right;
                continue;
            }
            let entry = node.cast::<Entry>();
            match tail.cmp(&(*entry).digest_tail) {
                core::cmp::Ordering::Less => node = (*node).left,
                core::cmp::Ordering::Greater => node = (*node).right,
                core::cmp::Ordering::Equal => return entry,
            }
        }
        ptr::null_mut()
    }

    unsafe fn queue_of(&self, kind: Kind) -> *mut ngx_queue_t {
        if kind.is_protected() {
            ptr::addr_of_mut!((*self.header).protected)
        } else {
            ptr::addr_of_mut!((*self.header).ordinary)
        }
    }

    unsafe fn touch(&mut self, entry: *mut Entry) {
        let kind = Kind::from_u8((*entry).kind).unwrap_or(Kind::None);
        ngx_queue_remove(ptr::addr_of_mut!((*entry).queue));
        ngx_queue_insert_after(self.queue_of(kind), ptr::addr_of_mut!((*entry).queue));
    }

    unsafe fn remove(&mut self, entry: *mut Entry) {
        ngx_queue_remove(ptr::addr_of_mut!((*entry).queue));
        ngx_rbtree_delete(
            ptr::addr_of_mut!((*self.header).rbtree),
            ptr::addr_of_mut!((*entry).node),
        );
        ngx_slab_free_locked(self.shpool, entry.cast());
        (*self.header).entries = (*self.header).entries.saturating_sub(1);
    }

    unsafe fn copy_data(&self, entry: *mut Entry, out: &mut Vec<u8>) {
        let data = core::slice::from_raw_parts(entry_data(entry), (*entry).len as usize);
        out.clear();
        out.extend_from_slice(data);
    }

    /// Looks up `digest`. With `lock_for`, a miss or an expired entry locks
    /// the key for that many milliseconds so that concurrent requests wait
    /// for one resolver call. With `background_update`, a fresh entry in the
    /// last quarter of its lifetime is handed out for refresh once per
    /// `refresh_lock_for` milliseconds. `buffer` receives the entry's data
    /// and is returned inside the result, so the caller can reserve it
    /// before the lock is taken.
    ///
    /// # Safety
    /// The zone must be live.
    pub unsafe fn lookup(
        &mut self,
        digest: &KeyDigest,
        now: u64,
        lock_for: Option<u64>,
        background_update: bool,
        refresh_lock_for: u64,
        mut buffer: Vec<u8>,
    ) -> Lookup {
        let entry = self.find(digest);
        if entry.is_null() {
            let locked = match lock_for {
                Some(lock_for) => self.insert_placeholder(digest, now, now + lock_for),
                None => false,
            };
            return Lookup::Miss { locked };
        }

        let kind = Kind::from_u8((*entry).kind).unwrap_or(Kind::Pending);
        if kind == Kind::Pending {
            // A location with `authgear_cache_lock off` that shares the zone
            // does not wait for another location's resolver call.
            if lock_for.is_some() && (*entry).locked_until > now {
                return Lookup::Wait;
            }
            // The request that held the lock is gone: take it over.
            let locked = match lock_for {
                Some(lock_for) => {
                    (*entry).locked_until = now + lock_for;
                    true
                }
                None => false,
            };
            return Lookup::Miss { locked };
        }

        if now < (*entry).expires {
            self.touch(entry);
            let refresh = background_update
                && (*entry).locked_until <= now
                && refresh_due(now, (*entry).expires, (*entry).lifetime);
            if refresh {
                (*entry).locked_until = now + refresh_lock_for;
            }
            self.copy_data(entry, &mut buffer);
            return Lookup::Fresh {
                data: buffer,
                kind,
                refresh,
            };
        }

        if lock_for.is_some() && (*entry).locked_until > now {
            return Lookup::Wait;
        }
        let locked = match lock_for {
            Some(lock_for) => {
                (*entry).locked_until = now + lock_for;
                true
            }
            None => false,
        };
        self.copy_data(entry, &mut buffer);
        Lookup::Expired {
            data: buffer,
            expires: (*entry).expires,
            locked,
        }
    }

    unsafe fn insert_placeholder(&mut self, digest: &KeyDigest, now: u64, until: u64) -> bool {
        let entry = self.allocate(0, now);
        if entry.is_null() {
            return false;
        }
        self.link(entry, digest, Kind::Pending, 0, 0, until);
        true
    }

    unsafe fn link(
        &mut self,
        entry: *mut Entry,
        digest: &KeyDigest,
        kind: Kind,
        expires: u64,
        lifetime: u64,
        locked_until: u64,
    ) {
        let (key, tail) = split_digest(digest);
        (*entry).node.key = key;
        (*entry).digest_tail = tail;
        (*entry).kind = kind as u8;
        (*entry).expires = expires;
        (*entry).lifetime = lifetime;
        (*entry).locked_until = locked_until;
        // A module loaded at another address after a reload may share this
        // zone, so the insert callback is set by whoever inserts.
        (*self.header).rbtree.insert = Some(insert_entry);
        ngx_rbtree_insert(
            ptr::addr_of_mut!((*self.header).rbtree),
            ptr::addr_of_mut!((*entry).node),
        );
        ngx_queue_insert_after(self.queue_of(kind), ptr::addr_of_mut!((*entry).queue));
        (*self.header).entries += 1;
    }

    /// Allocates an entry with room for `len` bytes of data, evicting other
    /// entries when the zone is full: expired ones first, then the least
    /// recently used ordinary ones, then the least recently used valid
    /// sessions. Returns null on failure.
    unsafe fn allocate(&mut self, len: usize, now: u64) -> *mut Entry {
        let size = size_of::<Entry>() + len;
        let mut evicted_live = false;
        for _ in 0..MAX_EVICTIONS {
            let entry = ngx_slab_alloc_locked(self.shpool, size).cast::<Entry>();
            if !entry.is_null() {
                (*entry).len = len as u32;
                if evicted_live {
                    self.note_full(now);
                }
                return entry;
            }
            if self.evict_expired(now) {
                continue;
            }
            let ordinary = ptr::addr_of_mut!((*self.header).ordinary);
            let protected = ptr::addr_of_mut!((*self.header).protected);
            if self.evict_oldest(ordinary, now) || self.evict_oldest(protected, now) {
                evicted_live = true;
                continue;
            }
            break;
        }
        self.note_full(now);
        ptr::null_mut()
    }

    /// Removes one expired, unlocked entry found near the end of either
    /// LRU queue.
    ///
    /// NOTE: only the last entries of each queue are searched, so an expired
    /// entry that was used recently can outlive a live one that was not.
    unsafe fn evict_expired(&mut self, now: u64) -> bool {
        for queue in [
            ptr::addr_of_mut!((*self.header).ordinary),
            ptr::addr_of_mut!((*self.header).protected),
        ] {
            let mut link = (*queue).prev;
            for _ in 0..EXPIRED_SCAN {
                if link == queue {
                    break;
                }
                let entry = entry_of_queue(link);
                link = (*link).prev;
                let pending = (*entry).kind == Kind::Pending as u8;
                if !pending && (*entry).expires <= now && (*entry).locked_until <= now {
                    self.remove(entry);
                    return true;
                }
            }
        }
        false
    }

    /// Removes the least recently used unlocked entry of `queue`.
    unsafe fn evict_oldest(&mut self, queue: *mut ngx_queue_t, now: u64) -> bool {
        let mut link = (*queue).prev;
        for _ in 0..EXPIRED_SCAN {
            if link == queue {
                return false;
            }
            let entry = entry_of_queue(link);
            link = (*link).prev;
            if (*entry).locked_until <= now {
                self.remove(entry);
                return true;
            }
        }
        false
    }

    /// Stores an answer under `digest`, replacing any entry or placeholder,
    /// which also releases the key's lock. Returns whether it was stored.
    ///
    /// # Safety
    /// The zone must be live.
    pub unsafe fn store(
        &mut self,
        digest: &KeyDigest,
        kind: Kind,
        data: &[u8],
        lifetime: u64,
        now: u64,
    ) -> bool {
        let old = self.find(digest);
        if !old.is_null() {
            self.remove(old);
        }
        let entry = self.allocate(data.len(), now);
        if entry.is_null() {
            return false;
        }
        ptr::copy_nonoverlapping(data.as_ptr(), entry_data(entry), data.len());
        self.link(entry, digest, kind, now + lifetime, lifetime, 0);
        true
    }

    /// Releases the lock on `digest` after a failed resolver call: a
    /// placeholder is removed, an expired entry stays for serving stale.
    ///
    /// # Safety
    /// The zone must be live.
    pub unsafe fn release(&mut self, digest: &KeyDigest) {
        let entry = self.find(digest);
        if entry.is_null() {
            return;
        }
        if (*entry).kind == Kind::Pending as u8 {
            self.remove(entry);
        } else {
            (*entry).locked_until = 0;
        }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: `lock` took this mutex, and this guard is its only owner.
        unsafe { ngx_shmtx_unlock(ptr::addr_of_mut!((*self.shpool).mutex)) };
    }
}
