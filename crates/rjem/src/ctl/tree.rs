//! The name tree: every control rjem answers, with its type and handler.
//! A new control is one leaf here whose handler calls its owner.
//!
//! Names, types and meanings are jemalloc 5.3's (see the mallctl section
//! of its manual). Where rjem extends one, the leaf's comment says so.

use super::{Error, Node, Type, Value, ARENAS_ALL};
use crate::arena::{self, Arena};
use crate::background;
use crate::decay;
use crate::size_class as sc;
use crate::tsd;

/// The root of the name space.
pub(super) static ROOT: Node = Node::Named(&[
    ("version", Node::Leaf(Type::Str, version)),
    ("opt", Node::Options),
    (
        "thread",
        Node::Named(&[(
            "tcache",
            Node::Named(&[("flush", Node::Leaf(Type::Void, thread_tcache_flush))]),
        )]),
    ),
    // Indices up to ARENAS_ALL inclusive.
    ("arena", Node::Indexed(ARENAS_ALL + 1, &ARENA_I)),
    (
        "arenas",
        Node::Named(&[
            ("narenas", Node::Leaf(Type::U32, arenas_narenas)),
            (
                "dirty_decay_ms",
                Node::Leaf(Type::Isize, arenas_dirty_decay_ms),
            ),
            (
                "muzzy_decay_ms",
                Node::Leaf(Type::Isize, arenas_muzzy_decay_ms),
            ),
            ("page", Node::Leaf(Type::Usize, arenas_page)),
            ("quantum", Node::Leaf(Type::Usize, arenas_quantum)),
        ]),
    ),
    (
        "stats",
        Node::Named(&[(
            "background_thread",
            Node::Named(&[
                ("num_threads", Node::Leaf(Type::Usize, bg_num_threads)),
                ("num_runs", Node::Leaf(Type::U64, bg_num_runs)),
            ]),
        )]),
    ),
]);

/// `arena.<i>.*`.
pub(super) static ARENA_I: Node = Node::Named(&[
    ("purge", Node::Leaf(Type::Void, arena_purge)),
    ("decay", Node::Leaf(Type::Void, arena_decay)),
    (
        "dirty_decay_ms",
        Node::Leaf(Type::Isize, arena_dirty_decay_ms),
    ),
    (
        "muzzy_decay_ms",
        Node::Leaf(Type::Isize, arena_muzzy_decay_ms),
    ),
]);

/// A read-only control's answer.
fn ro(new: Option<Value>, v: Value) -> Result<Value, Error> {
    match new {
        Some(_) => Err(Error::Permission),
        None => Ok(v),
    }
}

/// A decay time from a written value: -1 ..= a year.
fn decay_ms(v: Value) -> Result<i64, Error> {
    match v {
        Value::Isize(ms) if decay::valid_ms(ms as i64) => Ok(ms as i64),
        _ => Err(Error::Invalid),
    }
}

fn version(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    ro(new, Value::Str(c"5.3.0-0-rjem"))
}

fn thread_tcache_flush(_: &[usize], _: Option<Value>) -> Result<Value, Error> {
    tsd::flush();
    Ok(Value::Void)
}

/// The arenas `arena.<i>` names: one, or all for `ARENAS_ALL`.
fn arenas_of(i: usize, mut f: impl FnMut(&'static Arena)) -> Result<(), Error> {
    if i == ARENAS_ALL {
        arena::all().for_each(f);
        return Ok(());
    }
    f(arena::get(i).ok_or(Error::NotFound)?);
    Ok(())
}

fn arena_purge(idx: &[usize], _: Option<Value>) -> Result<Value, Error> {
    arenas_of(idx[0], |a| {
        a.purge();
    })?;
    Ok(Value::Void)
}

fn arena_decay(idx: &[usize], _: Option<Value>) -> Result<Value, Error> {
    arenas_of(idx[0], |a| {
        a.decay();
    })?;
    Ok(Value::Void)
}

/// `arena.<i>.{dirty,muzzy}_decay_ms`. For `ARENAS_ALL` (where jemalloc
/// fails with EFAULT) rjem reads the default for new arenas and writes it
/// and every automatic arena's time at once.
fn arena_decay_ms(idx: &[usize], new: Option<Value>, dirty: bool) -> Result<Value, Error> {
    let pick = |(d, m): (i64, i64)| if dirty { d } else { m };
    let (i, new) = (idx[0], new.map(decay_ms).transpose()?);
    let old = if i == ARENAS_ALL {
        let old = pick(arena::default_decay_ms());
        if let Some(ms) = new {
            let (d, m) = if dirty {
                (Some(ms), None)
            } else {
                (None, Some(ms))
            };
            arena::set_decay_ms_all(d, m);
        }
        old
    } else {
        let a = arena::get(i).ok_or(Error::NotFound)?;
        let mut pages = a.pages.lock();
        let old = pick((pages.decay_dirty.ms(), pages.decay_muzzy.ms()));
        if let Some(ms) = new {
            let (d, m) = if dirty {
                (Some(ms), None)
            } else {
                (None, Some(ms))
            };
            pages.set_decay(d, m);
        }
        old
    };
    Ok(Value::Isize(old as isize))
}

fn arena_dirty_decay_ms(idx: &[usize], new: Option<Value>) -> Result<Value, Error> {
    arena_decay_ms(idx, new, true)
}

fn arena_muzzy_decay_ms(idx: &[usize], new: Option<Value>) -> Result<Value, Error> {
    arena_decay_ms(idx, new, false)
}

/// `arenas.narenas`: arena indices in use (automatic arenas, the huge
/// arena, and any created by `MALLOCX_ARENA`).
fn arenas_narenas(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    let n = arena::count().max(arena::narenas());
    ro(new, Value::U32(n as u32))
}

/// `arenas.{dirty,muzzy}_decay_ms`: the time arenas created from now on
/// start with.
fn arenas_decay_ms(new: Option<Value>, dirty: bool) -> Result<Value, Error> {
    let (d, m) = arena::default_decay_ms();
    let old = if dirty { d } else { m };
    if let Some(v) = new {
        let ms = Some(decay_ms(v)?);
        let (d, m) = if dirty { (ms, None) } else { (None, ms) };
        arena::set_new_arena_decay_ms(d, m);
    }
    Ok(Value::Isize(old as isize))
}

fn arenas_dirty_decay_ms(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    arenas_decay_ms(new, true)
}

fn arenas_muzzy_decay_ms(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    arenas_decay_ms(new, false)
}

fn arenas_page(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    ro(new, Value::Usize(sc::geom().page))
}

fn arenas_quantum(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    ro(new, Value::Usize(sc::QUANTUM))
}

fn bg_num_threads(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    ro(new, Value::Usize(background::running() as usize))
}

fn bg_num_runs(_: &[usize], new: Option<Value>) -> Result<Value, Error> {
    ro(new, Value::U64(background::passes()))
}
