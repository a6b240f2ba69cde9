//! One watch channel per key of something derived from a changing source: subscribers of a
//! key share its channel, and after each change of the source every key's value is derived
//! again and sent only where it changed. Discovery's table-shaped sources and the control
//! plane's Destination API both serve their subscribers this way.

use std::collections::HashMap;
use std::hash::Hash;

use tokio::sync::watch;

pub struct Watches<K, V> {
    senders: HashMap<K, watch::Sender<V>>,
}

impl<K, V> Default for Watches<K, V> {
    fn default() -> Self {
        Self {
            senders: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, V: PartialEq> Watches<K, V> {
    /// A receiver for `key`, sharing its channel when it has one; a new channel starts at
    /// `current()`.
    pub fn subscribe(&mut self, key: &K, current: impl FnOnce() -> V) -> watch::Receiver<V> {
        if let Some(tx) = self.senders.get(key) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(current());
        self.senders.insert(key.clone(), tx);
        rx
    }

    /// Derives every key's value again (`value_of`) and tells the key's subscribers where
    /// it changed. A channel nobody holds a receiver of is dropped, unless `keep` says its
    /// key is worth keeping anyway.
    pub fn publish(&mut self, value_of: impl Fn(&K) -> V, keep: impl Fn(&K) -> bool) {
        self.senders.retain(|key, tx| {
            if tx.receiver_count() == 0 && !keep(key) {
                return false;
            }
            let next = value_of(key);
            tx.send_if_modified(|cur| {
                let changed = *cur != next;
                if changed {
                    *cur = next;
                }
                changed
            });
            true
        });
    }

    /// Keys with a channel now.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_share_a_channel_and_hear_only_changes() {
        let mut w: Watches<&str, u32> = Watches::default();
        let mut a = w.subscribe(&"a", || 1);
        let b = w.subscribe(&"a", || 99);
        assert_eq!((*a.borrow(), *b.borrow()), (1, 1));
        w.publish(|_| 1, |_| false);
        assert!(!a.has_changed().unwrap());
        w.publish(|_| 2, |_| false);
        assert!(a.has_changed().unwrap());
        assert_eq!(*a.borrow_and_update(), 2);
    }

    #[test]
    fn an_unheld_channel_goes_unless_kept() {
        let mut w: Watches<&str, u32> = Watches::default();
        drop(w.subscribe(&"kept", || 1));
        drop(w.subscribe(&"gone", || 1));
        w.publish(|_| 2, |k| *k == "kept");
        assert_eq!(w.len(), 1);
        assert_eq!(*w.subscribe(&"kept", || 0).borrow(), 2);
    }
}
