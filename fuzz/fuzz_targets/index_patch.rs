//! Patching an index (core/src/index/patch.rs) against building it again: the input describes
//! modules and a change of them; the old index of the modules, patched with the change, must be
//! the index of the changed modules, for alias-like indexes (a key's values from many modules,
//! priority the module's place) and symbol-like ones (one value per key, its last giver's).
//! Input: a control byte, then records separated by NUL, each a module byte then a key. The
//! control byte's bits pick which modules go, which are given their keys again (another build)
//! and where a new one goes; a record whose module byte has its top bit set belongs to the new
//! module.
#![no_main]

use std::collections::BTreeMap;

use depmod_core::index::IndexBuilder;
use depmod_core::index::patch::{Changes, PatchError, patch};
use libfuzzer_sys::fuzz_target;

/// A module: its name and its keys, in order.
type Module = (Vec<u8>, Vec<Vec<u8>>);

fn alias_index(modules: &[Module]) -> Option<Vec<u8>> {
    let mut b = IndexBuilder::new();
    for (i, (name, keys)) in modules.iter().enumerate() {
        for k in keys {
            b.insert(k, name, i as u32).ok()?;
        }
    }
    let mut out = Vec::new();
    b.write(&mut out).ok()?;
    Some(out)
}

fn owners(modules: &[Module]) -> BTreeMap<Vec<u8>, usize> {
    let mut owners = BTreeMap::new();
    for (i, (_, keys)) in modules.iter().enumerate() {
        for k in keys {
            owners.insert(k.clone(), i);
        }
    }
    owners
}

fn symbol_index(modules: &[Module]) -> Option<Vec<u8>> {
    let mut b = IndexBuilder::new();
    for (key, owner) in owners(modules) {
        b.insert(&key, &modules[owner].0, owner as u32).ok()?;
    }
    let mut out = Vec::new();
    b.write(&mut out).ok()?;
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let mut old: Vec<Module> = (0..8).map(|i| (format!("m{i}").into_bytes(), vec![])).collect();
    let mut added_keys = Vec::new();
    for record in rest.split(|&b| b == 0).take(64) {
        let Some((&m, key)) = record.split_first() else { continue };
        if key.is_empty() || key.iter().any(|&b| b >= 0x80) {
            continue;
        }
        match m & 0x80 {
            0 => old[usize::from(m) % 8].1.push(key.to_vec()),
            _ => added_keys.push(key.to_vec()),
        }
    }
    // The change: module i goes when bit i of the control byte is set and i is even, is given
    // the new module's keys again (another build) when it is set and i is odd; the new module
    // goes at the place the control byte's top bits name.
    let mut new: Vec<(Module, Option<usize>)> = Vec::new();
    for (i, m) in old.iter().enumerate() {
        match (control >> i & 1, i % 2) {
            (0, _) => new.push((m.clone(), Some(i))),
            (_, 0) => {}
            _ => new.push(((m.0.clone(), added_keys.clone()), None)),
        }
    }
    let at = usize::from(control >> 5) % (new.len() + 1);
    new.insert(at, ((b"new".to_vec(), added_keys.clone()), None));
    let mut remap = vec![None; old.len()];
    for (j, (_, from)) in new.iter().enumerate() {
        if let Some(i) = from {
            remap[*i] = Some(j as u32);
        }
    }
    let mut touched: Vec<Vec<u8>> = old
        .iter()
        .zip(&remap)
        .filter(|(_, r)| r.is_none())
        .flat_map(|(m, _)| m.1.clone())
        .chain(new.iter().filter(|(_, from)| from.is_none()).flat_map(|(m, _)| m.1.clone()))
        .collect();
    touched.sort();
    touched.dedup();
    let touched: Vec<&[u8]> = touched.iter().map(|k| &k[..]).collect();
    let remap = |p: u32| remap.get(p as usize).copied().flatten();
    let modules: Vec<Module> = new.iter().map(|(m, _)| m.clone()).collect();
    // Alias-like: the new modules' keys are added.
    let added: Vec<(Vec<u8>, Vec<u8>, u32)> = new
        .iter()
        .enumerate()
        .filter(|(_, (_, from))| from.is_none())
        .flat_map(|(j, (m, _))| m.1.iter().map(move |k| (k.clone(), m.0.clone(), j as u32)))
        .collect();
    let added: Vec<(&[u8], &[u8], u32)> =
        added.iter().map(|(k, v, p)| (&k[..], &v[..], *p)).collect();
    let (Some(before), Some(after)) = (alias_index(&old), alias_index(&modules)) else { return };
    let changes = Changes { touched: &touched, drop_touched: false, remap: &remap, added: &added };
    let mut out = Vec::new();
    match patch(&before, &changes, &mut out) {
        Ok(()) => assert_eq!(out, after, "alias-like"),
        Err(PatchError::AtRoot) => {}
        Err(e) => panic!("alias-like: {e}"),
    }
    // Symbol-like: each touched key with its owner now.
    let owners = owners(&modules);
    let added: Vec<(&[u8], &[u8], u32)> = touched
        .iter()
        .filter_map(|k| owners.get(*k).map(|&j| (*k, &modules[j].0[..], j as u32)))
        .collect();
    let (Some(before), Some(after)) = (symbol_index(&old), symbol_index(&modules)) else { return };
    let changes = Changes { touched: &touched, drop_touched: true, remap: &remap, added: &added };
    let mut out = Vec::new();
    match patch(&before, &changes, &mut out) {
        Ok(()) => assert_eq!(out, after, "symbol-like"),
        Err(PatchError::AtRoot) => {}
        Err(e) => panic!("symbol-like: {e}"),
    }
    // Any file at all: an error or a result, never a panic.
    let mut out = Vec::new();
    let _ = patch(rest, &changes, &mut out);
});
