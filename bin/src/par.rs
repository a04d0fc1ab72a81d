//! Work shared out over threads, with results in input order whatever the scheduling.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `f(i, &items[i])` for every item, on up to `threads` threads (the caller's among them), each
/// taking the next item as it becomes free. The results are in `items`' order.
pub fn map<T, R, F>(items: &[T], threads: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(usize, &T) -> R + Sync,
{
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let (Some(item), Some(slot)) = (items.get(i), slots.get(i)) else { break };
        let r = f(i, item);
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    };
    std::thread::scope(|s| {
        for _ in 1..threads.clamp(1, items.len().max(1)) {
            s.spawn(work);
        }
        work();
    });
    // Every slot is filled: the caller's thread works until no item is left, and the scope
    // waits for the others.
    slots.into_iter().filter_map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner())).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_in_input_order() {
        let items: Vec<u32> = (0..1000).collect();
        for threads in [0, 1, 2, 7] {
            let out = super::map(&items, threads, |i, &x| (i, x * 2));
            assert_eq!(out.len(), items.len());
            assert!(out.iter().enumerate().all(|(i, &(j, y))| i == j && y == items[i] * 2));
        }
        assert!(super::map(&[] as &[u32], 4, |_, &x| x).is_empty());
    }
}
