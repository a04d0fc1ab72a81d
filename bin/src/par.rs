//! How work is shared out over threads: a parallel map with per-thread state, whose results
//! come out in input order whatever the scheduling (all at the end, or each as soon as it and
//! those before it are done: [`for_each_in_order`]), its form for work that finds more work
//! ([`tree`]: results taken depth first), and a [`Worker`] thread that works through items in
//! the background. Every parallel phase uses one of them: listing the module directories
//! ([`tree`]), loading the modules (while the walk is still finding them), the dependency pass,
//! the outputs, and the flush of the written files (a [`Worker`], while the outputs are made).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, PoisonError};

/// Threads for a run: `DEPMOD_THREADS` when set to a positive number, otherwise one per
/// available CPU.
pub fn thread_count() -> usize {
    std::env::var("DEPMOD_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f(&mut state, i, item)` for every item that `produce` hands over (the `i`th one handed
/// over is `item`), on `threads` threads, each with its own `state` made by `init` and taking
/// the next item as it becomes free. `produce` runs on the caller's thread meanwhile, so items
/// can be worked on while later ones are still being found. Returns what `produce` returned and
/// the results in the order the items were handed over.
pub fn map_with<T, S, R, P>(
    threads: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize, T) -> R + Sync,
    produce: impl FnOnce(&dyn Fn(T)) -> P,
) -> (P, Vec<R>)
where
    T: Send,
    R: Send,
{
    let queue = Queue::default();
    let work = || {
        let mut state = init();
        let mut done = Vec::new();
        while let Some((i, item)) = queue.pop() {
            done.push((i, f(&mut state, i, item)));
        }
        done
    };
    let (produced, batches) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1)).map(|_| s.spawn(work)).collect();
        let produced = produce(&|item| queue.push(item));
        queue.close();
        let batches: Vec<Vec<(usize, R)>> = workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect();
        (produced, batches)
    });
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(queue.handed()).collect();
    for (i, r) in batches.into_iter().flatten() {
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(r);
        }
    }
    // Every slot is filled: the workers stop only once the queue is closed and empty.
    (produced, slots.into_iter().flatten().collect())
}

/// [`map_with`] over the items of a slice, on at most one thread per item.
pub fn map_slice_with<T, S, R>(
    items: &[T],
    threads: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize, &T) -> R + Sync,
) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    let threads = threads.clamp(1, items.len().max(1));
    map_with(threads, init, f, |push| items.iter().for_each(push)).1
}

/// `f(item)` for every item of `items` on up to `threads` threads, each result handed to `take`
/// (with its item) on the caller's thread, in input order, as soon as it and every one before
/// it are done (not all at the end: a result is let go as soon as it is taken). The first `Err`
/// from `take` ends the taking and is returned; the items already handed out are still worked
/// on, their results dropped.
pub fn for_each_in_order<T, R, E>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
    mut take: impl FnMut(&T, R) -> Result<(), E>,
) -> Result<(), E>
where
    T: Sync,
    R: Send,
{
    let slots = items.iter().map(|_| None).collect();
    let done = Done { state: Mutex::new(Slots { slots, unwound: false }), ready: Condvar::new() };
    let threads = threads.clamp(1, items.len().max(1));
    let work = |_: &mut (), i: usize, item: &T| {
        // Should `f` unwind (a bug), the taker stops waiting for this result: the panic is then
        // resumed when the threads are joined, instead of the run hanging.
        let guard = OnUnwind(|| {
            done.lock().unwound = true;
            done.ready.notify_all();
        });
        let result = f(item);
        std::mem::forget(guard);
        let mut state = done.lock();
        if let Some(slot) = state.slots.get_mut(i) {
            *slot = Some(result);
        }
        done.ready.notify_all();
    };
    let (taken, _) = map_with(
        threads,
        || (),
        work,
        |push| {
            items.iter().for_each(push);
            for (i, item) in items.iter().enumerate() {
                let mut state = done.lock();
                // Every item is worked on once, so each slot is filled in the end.
                let result = loop {
                    match state.slots.get_mut(i).map(Option::take) {
                        Some(Some(result)) => break result,
                        Some(None) if !state.unwound => {
                            state = done.ready.wait(state).unwrap_or_else(PoisonError::into_inner);
                        }
                        _ => return Ok(()),
                    }
                };
                drop(state);
                take(item, result)?;
            }
            Ok(())
        },
    );
    taken
}

/// Work shaped as a tree, taken in depth-first order: `work(&mut state, item)` gives an item's
/// result and its children, each thread with its own `state` made by `init`. `visit(get)` runs
/// on the caller's thread: `get(n)` gives the `n`th item's result and the place of its first
/// child (its other children follow that one); the root is item 0. Items are worked on by
/// `threads` threads, the caller's among them: `get` works on the item asked for when it has not
/// been started yet, and on others while it would otherwise wait. The threads take the item
/// found last first, and an item's children first to last, which is the order `visit` asks for
/// them when it goes depth first. `get` gives `None` for an item that is not there or was taken
/// already, or after a thread unwound (the panic is then resumed when the threads are joined).
pub fn tree<T, S, R, P>(
    threads: usize,
    root: T,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, T) -> (R, Vec<T>) + Sync,
    visit: impl FnOnce(&mut dyn FnMut(usize) -> Option<(R, usize)>) -> P,
) -> P
where
    T: Send,
    R: Send,
{
    let tree = Tree {
        state: Mutex::new(TreeState {
            slots: vec![Slot::Queued(root)],
            stack: vec![0],
            busy: 0,
            stop: false,
            waiting: 0,
        }),
        ready: Condvar::new(),
    };
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut own = init();
                    let mut state = tree.lock();
                    loop {
                        if state.stop {
                            return;
                        }
                        if let Some((i, item)) = state.next() {
                            state = tree.work(state, i, item, &mut own, &work);
                        } else if state.busy == 0 {
                            return;
                        } else {
                            state = tree.wait(state);
                        }
                    }
                })
            })
            .collect();
        let mut own = init();
        let mut get = |n: usize| {
            let mut state = tree.lock();
            loop {
                if state.stop {
                    return None;
                }
                if let Some(done) = state.take(n) {
                    return Some(done);
                }
                if let Some(item) = state.start(n) {
                    state = tree.work(state, n, item, &mut own, &work);
                } else if !matches!(state.slots.get(n), Some(Slot::Working)) {
                    return None;
                } else if let Some((i, item)) = state.next() {
                    state = tree.work(state, i, item, &mut own, &work);
                } else {
                    state = tree.wait(state);
                }
            }
        };
        let visited = visit(&mut get);
        tree.lock().stop = true;
        tree.ready.notify_all();
        for helper in helpers {
            helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
        visited
    })
}

/// The items of [`tree`] and where each is.
struct Tree<T, R> {
    state: Mutex<TreeState<T, R>>,
    ready: Condvar,
}

struct TreeState<T, R> {
    /// Each item by its place.
    slots: Vec<Slot<T, R>>,
    /// Places of items that may still be waiting to be worked on, the next one last.
    stack: Vec<usize>,
    /// Items being worked on.
    busy: usize,
    /// The visit is over, or a thread unwound: the threads stop.
    stop: bool,
    /// Threads waiting (only then is a wake-up worth a system call).
    waiting: usize,
}

enum Slot<T, R> {
    Queued(T),
    Working,
    /// The result, and the place of the first child.
    Done(R, usize),
    Taken,
}

impl<T, R> TreeState<T, R> {
    /// Item `i`, marked as being worked on, if it was waiting for that.
    fn start(&mut self, i: usize) -> Option<T> {
        let slot = self.slots.get_mut(i).filter(|s| matches!(s, Slot::Queued(_)))?;
        let Slot::Queued(item) = std::mem::replace(slot, Slot::Working) else { return None };
        self.busy += 1;
        Some(item)
    }

    /// The next item to work on, marked as being worked on.
    fn next(&mut self) -> Option<(usize, T)> {
        while let Some(i) = self.stack.pop() {
            if let Some(item) = self.start(i) {
                return Some((i, item));
            }
        }
        None
    }

    /// Item `n`'s result and the place of its first child, if it is done (it is then taken).
    fn take(&mut self, n: usize) -> Option<(R, usize)> {
        let slot = self.slots.get_mut(n).filter(|s| matches!(s, Slot::Done(..)))?;
        let Slot::Done(result, first) = std::mem::replace(slot, Slot::Taken) else { return None };
        Some((result, first))
    }
}

impl<T, R> Tree<T, R> {
    fn lock(&self) -> std::sync::MutexGuard<'_, TreeState<T, R>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(
        &self,
        mut state: std::sync::MutexGuard<'a, TreeState<T, R>>,
    ) -> std::sync::MutexGuard<'a, TreeState<T, R>> {
        state.waiting += 1;
        let mut state = self.ready.wait(state).unwrap_or_else(PoisonError::into_inner);
        state.waiting -= 1;
        state
    }

    /// Works on item `i` (marked as being worked on) with the lock let go, then files its result
    /// and queues its children.
    fn work<'a, S>(
        &'a self,
        state: std::sync::MutexGuard<'a, TreeState<T, R>>,
        i: usize,
        item: T,
        own: &mut S,
        work: &impl Fn(&mut S, T) -> (R, Vec<T>),
    ) -> std::sync::MutexGuard<'a, TreeState<T, R>> {
        drop(state);
        // Should `work` unwind (a bug), the other threads stop instead of waiting for its result.
        let guard = OnUnwind(|| {
            self.lock().stop = true;
            self.ready.notify_all();
        });
        let (result, children) = work(own, item);
        std::mem::forget(guard);
        let mut state = self.lock();
        let first = state.slots.len();
        state.slots.extend(children.into_iter().map(Slot::Queued));
        let last = state.slots.len();
        state.stack.extend((first..last).rev());
        if let Some(slot) = state.slots.get_mut(i) {
            *slot = Slot::Done(result, first);
        }
        state.busy -= 1;
        if state.waiting > 0 {
            self.ready.notify_all();
        }
        state
    }
}

/// Results of [`for_each_in_order`] not taken yet.
struct Done<R> {
    state: Mutex<Slots<R>>,
    ready: Condvar,
}

struct Slots<R> {
    /// The results by input position.
    slots: Vec<Option<R>>,
    /// A worker unwound: one slot will never be filled.
    unwound: bool,
}

impl<R> Done<R> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots<R>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A thread of its own that works through items as they are handed over, one after the other in
/// the order given, while the caller goes on: [`Worker::push`] hands one over, and
/// [`Worker::finish`] waits until all are done. The work stops at its first `Err`; the items
/// after it are dropped undone.
pub struct Worker<T, E> {
    queue: std::sync::Arc<Queue<T>>,
    thread: std::thread::JoinHandle<Result<(), E>>,
}

impl<T: Send + 'static, E: Send + 'static> Worker<T, E> {
    /// Starts the thread, named `name`, which does `work(item)` for each item; fails when no
    /// thread can be started.
    pub fn spawn(
        name: &str,
        mut work: impl FnMut(T) -> Result<(), E> + Send + 'static,
    ) -> std::io::Result<Self> {
        let queue = std::sync::Arc::new(Queue::default());
        let items = std::sync::Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || std::iter::from_fn(|| items.pop()).try_for_each(|(_, t)| work(t)))?;
        Ok(Worker { queue, thread })
    }

    /// Hands `item` over.
    pub fn push(&self, item: T) {
        self.queue.push(item);
    }

    /// Waits until every item handed over is done; the first failure, if any.
    pub fn finish(self) -> Result<(), E> {
        self.queue.close();
        self.thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// Runs its closure when dropped. Forgotten once the work it guards has returned, it runs only
/// while that work unwinds.
struct OnUnwind<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnUnwind<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Items handed over and not yet taken, with the count of all handed over.
struct Queue<T> {
    state: Mutex<QueueState<T>>,
    ready: Condvar,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue { state: Mutex::default(), ready: Condvar::new() }
    }
}

struct QueueState<T> {
    items: VecDeque<(usize, T)>,
    /// How many items were handed over in all.
    handed: usize,
    /// No more items will come.
    closed: bool,
    /// Threads waiting for an item (only then is a wake-up worth a system call).
    waiting: usize,
}

impl<T> Default for QueueState<T> {
    fn default() -> Self {
        QueueState { items: VecDeque::new(), handed: 0, closed: false, waiting: 0 }
    }
}

impl<T> Queue<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, item: T) {
        let mut state = self.lock();
        let i = state.handed;
        state.items.push_back((i, item));
        state.handed += 1;
        if state.waiting > 0 {
            self.ready.notify_one();
        }
    }

    /// No more items: the threads finish the queue and stop.
    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// The next item, waiting for one if needed; `None` once the queue is closed and empty.
    fn pop(&self) -> Option<(usize, T)> {
        let mut state = self.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                return Some(item);
            }
            if state.closed {
                return None;
            }
            state.waiting += 1;
            state = self.ready.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
    }

    fn handed(&self) -> usize {
        self.lock().handed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn results_in_input_order() {
        let items: Vec<u32> = (0..1000).collect();
        for threads in [0, 1, 2, 7] {
            let out = map_slice_with(&items, threads, || (), |_, i, &x| (i, x * 2));
            assert_eq!(out.len(), items.len());
            assert!(out.iter().enumerate().all(|(i, &(j, y))| i == j && y == items[i] * 2));
        }
        assert!(map_slice_with(&[] as &[u32], 4, || (), |_, _, &x| x).is_empty());
    }

    /// Results are taken in input order, whatever order they are done in, and the taking stops
    /// at the first error.
    #[test]
    fn taken_in_input_order_until_an_error() {
        let items: Vec<u64> = (0..40).collect();
        // Later items finish first.
        let slow = |&x: &u64| {
            std::thread::sleep(std::time::Duration::from_micros(40 - x));
            x * 3
        };
        for threads in [0, 1, 2, 5] {
            let mut taken = Vec::new();
            let all = for_each_in_order(&items, threads, slow, |&x, r| {
                taken.push((x, r));
                Ok::<(), ()>(())
            });
            assert_eq!(all, Ok(()));
            assert_eq!(taken, items.iter().map(|&x| (x, x * 3)).collect::<Vec<_>>());
            let mut seen = 0;
            let stopped = for_each_in_order(&items, threads, slow, |&x, _| {
                seen += 1;
                if x == 7 { Err(x) } else { Ok(()) }
            });
            assert_eq!((stopped, seen), (Err(7), 8));
        }
        assert_eq!(for_each_in_order(&[] as &[u64], 2, slow, |_, _| Err(())), Ok(()));
    }

    /// A worker that panics makes the call panic, whatever the taker is waiting for, instead of
    /// leaving it waiting.
    #[test]
    fn a_panicking_worker_does_not_leave_the_taker_waiting() {
        let items: Vec<u64> = (0..8).collect();
        for threads in [1, 2] {
            let run = std::panic::catch_unwind(|| {
                for_each_in_order(
                    &items,
                    threads,
                    |&x| if x == 3 { panic!("bug") } else { x },
                    |_, _| Ok::<(), ()>(()),
                )
            });
            assert!(run.is_err());
        }
    }

    /// A tree's results are visited depth first, each with its children, whatever thread
    /// worked on them.
    #[test]
    fn a_tree_is_visited_depth_first() {
        // Item `n` (a path of child numbers) has `n.len() % 4 + 1` children down to depth 5.
        let work = |_: &mut (), path: Vec<u32>| {
            let children = if path.len() < 5 { (path.len() % 4 + 1) as u32 } else { 0 };
            std::thread::sleep(std::time::Duration::from_micros(u64::from(children) * 20));
            let kids: Vec<Vec<u32>> = (0..children).map(|c| [&path[..], &[c]].concat()).collect();
            ((path, children), kids)
        };
        type Get<'a> = &'a mut dyn FnMut(usize) -> Option<((Vec<u32>, u32), usize)>;
        fn visit(get: Get<'_>, n: usize, out: &mut Vec<Vec<u32>>) {
            let ((path, children), first) = get(n).unwrap();
            out.push(path);
            for c in 0..children as usize {
                visit(get, first + c, out);
            }
        }
        let mut expected = Vec::new();
        let mut stack = vec![Vec::new()];
        while let Some(path) = stack.pop() {
            let ((path, children), kids) = work(&mut (), path);
            expected.push(path);
            assert_eq!(kids.len(), children as usize);
            stack.extend(kids.into_iter().rev());
        }
        assert_eq!(expected.len(), 1 + 1 + 2 + 2 * 3 + 2 * 3 * 4 + 2 * 3 * 4);
        for threads in [0, 1, 2, 5] {
            let visited = tree(
                threads,
                Vec::new(),
                || (),
                work,
                |get| {
                    let mut out = Vec::new();
                    visit(get, 0, &mut out);
                    // Each item is given once.
                    assert!(get(0).is_none());
                    out
                },
            );
            assert_eq!(visited, expected, "{threads} threads");
        }
    }

    /// A thread that panics makes the call panic instead of leaving the others waiting.
    #[test]
    fn a_panicking_tree_worker_does_not_leave_the_others_waiting() {
        for threads in [1, 2, 3] {
            let run = std::panic::catch_unwind(|| {
                tree(
                    threads,
                    0u32,
                    || (),
                    |_, n| {
                        if n == 6 {
                            panic!("bug");
                        }
                        (n, if n < 10 { vec![n + 1, n + 2] } else { Vec::new() })
                    },
                    |get| {
                        // Every item, in place order, which waits on each in turn.
                        (0..).map_while(get).count()
                    },
                )
            });
            assert!(run.is_err());
        }
    }

    #[test]
    fn one_state_per_thread_while_items_are_produced() {
        let states = AtomicUsize::new(0);
        let init = || states.fetch_add(1, Ordering::Relaxed);
        let (produced, out) = map_with(
            3,
            init,
            |state, i, item: String| (*state, i, item.len()),
            |push| {
                for n in 0..500 {
                    push("x".repeat(n % 7));
                }
                "walked"
            },
        );
        assert_eq!(produced, "walked");
        assert_eq!(states.load(Ordering::Relaxed), 3);
        assert_eq!(out.len(), 500);
        for (n, &(state, i, len)) in out.iter().enumerate() {
            assert_eq!((i, len), (n, n % 7));
            assert!(state < 3);
        }
    }
}
