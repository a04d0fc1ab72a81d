//! The dependency graph: each module's direct dependencies, kmod's topological order, the
//! dependency lists of `modules.dep`, and the cycle report.

use alloc::vec::Vec;

/// Direct dependencies of every module, stored flat.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    /// Everyone's direct dependencies, module after module.
    edges: Vec<u32>,
    /// `ends[m]`: where module `m`'s dependencies end in `edges`.
    ends: Vec<u32>,
    /// `users[m]`: how many distinct modules need `m`.
    pub users: Vec<u32>,
}

impl Graph {
    /// An empty graph of `modules` modules, to be filled with [`Graph::push`] in module order.
    pub fn new(modules: usize) -> Self {
        Graph {
            edges: Vec::new(),
            ends: Vec::with_capacity(modules),
            users: alloc::vec![0; modules],
        }
    }

    /// Adds the direct dependencies of the next module (each one once).
    pub fn push(&mut self, deps: &[u32]) {
        for &d in deps {
            self.edges.push(d);
            if let Some(u) = self.users.get_mut(d as usize) {
                *u += 1;
            }
        }
        self.ends.push(self.edges.len() as u32);
    }

    /// A graph from each module's direct dependencies (for tests and tools).
    pub fn from_lists(lists: &[&[u32]]) -> Self {
        let mut g = Graph::new(lists.len());
        lists.iter().for_each(|deps| g.push(deps));
        g
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no modules.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The modules `m` needs directly, in order of first reference.
    pub fn deps(&self, m: u32) -> &[u32] {
        let i = m as usize;
        let start = i.checked_sub(1).and_then(|p| self.ends.get(p)).copied().unwrap_or(0);
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.edges.get(start as usize..end as usize).unwrap_or_default()
    }
}

/// `dep_sort_idx` of every module: a user always comes before what it needs.
///
/// Kahn's algorithm with a LIFO stack, seeded with the unused modules in array order; each
/// popped module releases its direct dependencies in their order. `Err` holds the remaining user
/// counts when some modules are in (or only reachable through) cycles.
pub fn topo_order(graph: &Graph) -> Result<Vec<u32>, Vec<u32>> {
    let n = graph.len();
    let mut users = graph.users.clone();
    let mut stack: Vec<u32> =
        (0..n as u32).filter(|&i| users.get(i as usize) == Some(&0)).collect();
    let mut order = alloc::vec![u32::MAX; n];
    let mut sorted = 0u32;
    while let Some(m) = stack.pop() {
        if let Some(slot) = order.get_mut(m as usize) {
            *slot = sorted;
        }
        sorted += 1;
        for &d in graph.deps(m) {
            if let Some(u) = users.get_mut(d as usize) {
                *u = u.saturating_sub(1);
                if *u == 0 {
                    stack.push(d);
                }
            }
        }
    }
    if (sorted as usize) < n { Err(users) } else { Ok(order) }
}

/// Collects the transitive dependencies of modules, reusing its scratch space between calls.
#[derive(Debug, Default)]
pub struct Closure {
    seen: Vec<u32>,
    stamp: u32,
    out: Vec<u32>,
    pending: Vec<u32>,
}

impl Closure {
    /// All modules `module` needs directly or indirectly, each once, sorted by `order`
    /// (the result of [`topo_order`]).
    pub fn of(&mut self, graph: &Graph, order: &[u32], module: u32) -> &[u32] {
        if self.seen.len() != graph.len() {
            self.seen = alloc::vec![0; graph.len()];
            self.stamp = 0;
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.seen.iter_mut().for_each(|s| *s = 0);
            self.stamp = 1;
        }
        self.out.clear();
        self.pending.clear();
        self.pending.push(module);
        while let Some(m) = self.pending.pop() {
            for &d in graph.deps(m) {
                if let Some(s) = self.seen.get_mut(d as usize) {
                    if *s != self.stamp {
                        *s = self.stamp;
                        self.out.push(d);
                        self.pending.push(d);
                    }
                }
            }
        }
        self.out.sort_unstable_by_key(|&d| order.get(d as usize).copied().unwrap_or(u32::MAX));
        &self.out
    }
}

/// What kmod prints when there are cycles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Each reported cycle as printed: from its root round to the root again (`a -> b -> a`).
    /// A root reached earlier from another root prints alone and counts for nothing.
    pub cycles: Vec<Vec<u32>>,
    /// How many distinct modules the cycles contain (`Found N modules in dependency cycles!`).
    pub modules: usize,
}

/// A list of roots with kmod's moving head: removing any element makes its successor the head.
struct Roots {
    items: Vec<u32>,
    head: usize,
}

impl Roots {
    fn take_head(&mut self) -> Option<u32> {
        if self.items.is_empty() {
            return None;
        }
        let m = self.items.remove(self.head);
        self.after_removal(self.head);
        Some(m)
    }

    fn remove(&mut self, m: u32) {
        // The search starts at the head; the list holds each module at most once, so the first
        // match found from index 0 is the same element.
        if let Some(at) = self.items.iter().position(|&i| i == m) {
            self.items.remove(at);
            self.after_removal(at);
        }
    }

    fn after_removal(&mut self, at: usize) {
        self.head = if self.items.is_empty() { 0 } else { at % self.items.len() };
    }
}

/// Reproduces kmod's cycle report from the user counts [`topo_order`] left behind.
///
/// From each remaining root, kmod walks every path depth-first (last dependency first) and
/// reports a cycle whenever it comes back to the root. It does not remember visited vertices on
/// a path, so when the root can reach a cycle that does not pass through it, kmod never stops.
/// Here such a root is walked differently: a path does not re-enter a vertex it already holds,
/// and only the root is marked visited. Where kmod terminates, the report is identical.
pub fn cycle_report(graph: &Graph, users: &[u32]) -> CycleReport {
    let n = graph.len();
    let deps = |m: u32| graph.deps(m);
    let mut roots = Roots {
        items: (0..n as u32).filter(|&i| users.get(i as usize).is_some_and(|&u| u > 0)).collect(),
        head: 0,
    };
    let mut visited = alloc::vec![false; n];
    let mut in_cycles = alloc::vec![false; n];
    let mut report = CycleReport::default();
    // Vertices of the walk: (module, index of the parent vertex).
    let mut vertices: Vec<(u32, Option<usize>)> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();

    while let Some(root) = roots.take_head() {
        let prune = reaches_cycle_avoiding(graph, root);
        vertices.clear();
        vertices.push((root, None));
        stack.push(0);
        while let Some(v) = stack.pop() {
            let Some(&(m, _)) = vertices.get(v) else {
                continue;
            };
            let seen = visited.get(m as usize).copied().unwrap_or(false);
            if seen && m == root {
                // The path from the root vertex down to this one's parent. When the root itself
                // was visited from an earlier root, the path is empty and only its name prints.
                let mut chain = Vec::new();
                let mut p = vertices.get(v).and_then(|x| x.1);
                while let Some(i) = p {
                    let Some(&(pm, pp)) = vertices.get(i) else {
                        break;
                    };
                    chain.push(pm);
                    p = pp;
                }
                chain.reverse();
                for &c in &chain {
                    if let Some(flag) = in_cycles.get_mut(c as usize) {
                        if !*flag {
                            *flag = true;
                            report.modules += 1;
                        }
                    }
                    roots.remove(c);
                }
                chain.push(root);
                report.cycles.push(chain);
                continue;
            }
            // In a walk kmod would never finish, only the root is marked, so that the cycles
            // met on the way are reported in full from their own roots later.
            if !prune || m == root {
                if let Some(flag) = visited.get_mut(m as usize) {
                    *flag = true;
                }
            }
            if deps(m).is_empty() {
                roots.remove(m);
                continue;
            }
            for &d in deps(m) {
                if prune && d != root && on_path(&vertices, v, d) {
                    continue;
                }
                vertices.push((d, Some(v)));
                stack.push(vertices.len() - 1);
            }
        }
    }
    report
}

/// Whether the walk's vertex `v` or one of its ancestors is module `m`.
fn on_path(vertices: &[(u32, Option<usize>)], v: usize, m: u32) -> bool {
    let mut p = Some(v);
    while let Some(i) = p {
        match vertices.get(i) {
            Some(&(pm, _)) if pm == m => return true,
            Some(&(_, pp)) => p = pp,
            None => return false,
        }
    }
    false
}

/// Whether `root` reaches a cycle that does not pass through `root` (where kmod's walk loops).
fn reaches_cycle_avoiding(graph: &Graph, root: u32) -> bool {
    // Iterative three-colour DFS over the graph without `root`.
    let n = graph.len();
    let mut colour = alloc::vec![0u8; n]; // 0 new, 1 on stack, 2 done
    let deps = |m: u32| graph.deps(m);
    let mut stack: Vec<(u32, usize)> = Vec::new();
    for &start in deps(root) {
        if start == root || colour.get(start as usize) != Some(&0) {
            continue;
        }
        stack.push((start, 0));
        if let Some(c) = colour.get_mut(start as usize) {
            *c = 1;
        }
        while let Some(&mut (m, ref mut next)) = stack.last_mut() {
            let Some(&d) = deps(m).get(*next) else {
                if let Some(c) = colour.get_mut(m as usize) {
                    *c = 2;
                }
                stack.pop();
                continue;
            };
            *next += 1;
            if d == root {
                continue;
            }
            match colour.get(d as usize) {
                Some(1) => return true,
                Some(0) => {
                    if let Some(c) = colour.get_mut(d as usize) {
                        *c = 1;
                    }
                    stack.push((d, 0));
                }
                _ => {}
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[&[u32]]) -> Graph {
        Graph::from_lists(edges)
    }

    #[test]
    fn lifo_topological_order() {
        // 0 -> 2, 1 -> 2, 2 -> 3: seeds 0, 1; 1 pops first.
        let g = graph(&[&[2], &[2], &[3], &[]]);
        assert_eq!(topo_order(&g).unwrap(), [1, 0, 2, 3]);
        let mut c = Closure::default();
        let order = topo_order(&g).unwrap();
        assert_eq!(c.of(&g, &order, 0), [2, 3]);
        assert_eq!(c.of(&g, &order, 3), [] as [u32; 0]);
    }

    #[test]
    fn simple_cycle() {
        let g = graph(&[&[1], &[0]]);
        let users = topo_order(&g).unwrap_err();
        let r = cycle_report(&g, &users);
        assert_eq!(r.cycles, [alloc::vec![0, 1, 0]]);
        assert_eq!(r.modules, 2);
    }

    #[test]
    fn chained_cycles_terminate() {
        // 0 <-> 1, 1 -> 2, 2 <-> 3: kmod never finishes this one.
        let g = graph(&[&[1], &[0, 2], &[3], &[2]]);
        let users = topo_order(&g).unwrap_err();
        let r = cycle_report(&g, &users);
        assert_eq!(r.cycles, [alloc::vec![0, 1, 0], alloc::vec![2, 3, 2]]);
        assert_eq!(r.modules, 4);
    }
}
