//! Control: jemalloc's `mallctl` name space, for Rust and (through `ffi`)
//! for C.
//!
//! Owns: the name tree's machinery: names and MIBs (Management
//! Information Bases: a name with each component replaced by its number),
//! typed values, errors, and the dispatch from a name to its handler. The
//! names themselves and their handlers are in `tree`, so adding a control
//! is one leaf there.
//!
//! A name is dot-separated components, as in jemalloc: fixed words
//! (`arenas.page`) and numbers at indexed nodes (`arena.0.purge`, where
//! 4096, jemalloc's `MALLCTL_ARENAS_ALL`, means every arena). Reading a
//! control returns its value; writing passes a new value of exactly its
//! type and returns the old one; a `Void` control (`arena.<i>.purge`) is
//! run, neither read nor written.
//!
//! ```
//! use rjem::ctl::{self, Value};
//! assert_eq!(ctl::read("opt.retain"), Ok(Value::Bool(true)));
//! let page = ctl::read("arenas.page").unwrap();
//! assert!(matches!(page, Value::Usize(p) if p >= 4096));
//! // Names become MIBs once, for cheap repeated use with other indices.
//! let mut purge = ctl::Mib::new("arena.0.purge").unwrap();
//! purge.set_index(1, ctl::ARENAS_ALL);
//! purge.run().unwrap();
//! ```

mod tree;
mod typed;

pub use typed::{
    arena, arenas, background_thread, epoch, max_background_threads, stats, thread, version,
    CtlType, TypedMib,
};

use crate::conf::{self, Setting};
use crate::decay;
use crate::init;
use core::ffi::CStr;

pub use crate::conf::Setting as OptionValue;

/// The index meaning "every arena" (jemalloc's `MALLCTL_ARENAS_ALL`).
pub const ARENAS_ALL: usize = 4096;

/// Most components in a name.
pub const MAX_DEPTH: usize = 8;

/// The C type of a control's value, as jemalloc declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// No value: the control is an action.
    Void,
    /// `bool`.
    Bool,
    /// `unsigned`.
    U32,
    /// `uint64_t`.
    U64,
    /// `size_t`.
    Usize,
    /// `ssize_t`.
    Isize,
    /// `const char *`.
    Str,
    /// A pointer (`void *`, `uint64_t *`, `extent_hooks_t *`).
    Ptr,
}

impl Type {
    /// Size in bytes of the C value (0 for `Void`).
    pub const fn size(self) -> usize {
        match self {
            Type::Void => 0,
            Type::Bool => 1,
            Type::U32 => 4,
            Type::U64 | Type::Usize | Type::Isize | Type::Str | Type::Ptr => 8,
        }
    }
}

/// A control's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// What an action returns.
    Void,
    /// A `bool`.
    Bool(bool),
    /// An `unsigned`.
    U32(u32),
    /// A `uint64_t`.
    U64(u64),
    /// A `size_t`.
    Usize(usize),
    /// An `ssize_t`.
    Isize(isize),
    /// A `const char *` that lives for the whole program.
    Str(&'static CStr),
    /// A pointer. Reading one is safe; what it may be used for is the
    /// control's contract (writing one needs `write_unchecked`).
    Ptr(*mut core::ffi::c_void),
}

// SAFETY: a `Value` is plain data; a `Ptr` is an address, only
// dereferenced by code that states its own contract.
unsafe impl Send for Value {}
// SAFETY: as above; a `Value` has no interior mutability.
unsafe impl Sync for Value {}

impl Value {
    /// The type of this value.
    pub const fn ty(&self) -> Type {
        match self {
            Value::Void => Type::Void,
            Value::Bool(_) => Type::Bool,
            Value::U32(_) => Type::U32,
            Value::U64(_) => Type::U64,
            Value::Usize(_) => Type::Usize,
            Value::Isize(_) => Type::Isize,
            Value::Str(_) => Type::Str,
            Value::Ptr(_) => Type::Ptr,
        }
    }
}

impl From<Setting> for Value {
    fn from(s: Setting) -> Value {
        match s {
            Setting::Bool(b) => Value::Bool(b),
            // jemalloc's tri-states read as bool: unset is false.
            Setting::Unset => Value::Bool(false),
            Setting::Unsigned(n) => Value::U32(n),
            Setting::Size(n) => Value::Usize(n),
            Setting::Ms(n) => Value::Isize(n),
            Setting::I64(n) => Value::Isize(n as isize),
            Setting::Str(w) => Value::Str(w),
        }
    }
}

/// Why a control could not be used; each maps to jemalloc's `errno` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No such name, or an index with nothing behind it (`ENOENT`).
    NotFound,
    /// A value of the wrong type or size, or out of range (`EINVAL`).
    Invalid,
    /// A write to a read-only control, or a read of an action (`EPERM`).
    Permission,
    /// The allocator could not start, or a resource ran out (`EAGAIN`).
    Again,
    /// A value the control cannot take, such as a decay time out of range,
    /// or an arena that cannot be used (`EFAULT`, as jemalloc).
    Fault,
    /// The control can break memory safety (it discards allocations or
    /// installs code to call): use `write_unchecked` / `run_unchecked`
    /// (C callers never see this; `EPERM`).
    Unsafe,
}

impl Error {
    /// jemalloc's `errno` value for this error.
    pub const fn errno(self) -> i32 {
        match self {
            Error::NotFound => libc::ENOENT,
            Error::Invalid => libc::EINVAL,
            Error::Permission => libc::EPERM,
            Error::Again => libc::EAGAIN,
            Error::Fault => libc::EFAULT,
            Error::Unsafe => libc::EPERM,
        }
    }
}

/// A node of the name tree (see `tree`).
pub(crate) enum Node {
    /// Fixed words; a MIB component is the child's position.
    Named(&'static [(&'static str, Node)]),
    /// Numbers below a bound; a MIB component is the number itself.
    Indexed(usize, &'static Node),
    /// The option table, one read-only leaf per option (`opt.<name>`).
    Options,
    /// A read-only control, or an action (`Type::Void`).
    Leaf(Type, Handler),
    /// A control that can also be written.
    Rw(Type, Handler),
    /// A control that can only be written (its handler returns `Void`).
    Wo(Type, Handler),
    /// A write-only control that can also be run without a value (its
    /// handler then gets None): jemalloc's `prof.dump` (default file name)
    /// and `prof.reset` (same sample rate).
    WoOpt(Type, Handler),
    /// A control read as the first type and written as the second in the
    /// same call (`arenas.lookup`: a pointer in, an arena index out).
    Query(Type, Type, Handler),
    /// `node`, whose writes and actions can break memory safety: from
    /// Rust, only through `write_unchecked` / `run_unchecked`.
    Unsafe(&'static Node),
}

/// A control's handler: given the numbers met at indexed nodes along the
/// name, and a new value when writing (already checked to have the
/// leaf's type), returns the current (old) value or runs the action.
pub(crate) type Handler = fn(&[usize], Option<Value>) -> Result<Value, Error>;

/// A name resolved to numbers (jemalloc's MIB), cheap to use repeatedly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mib {
    comps: [usize; MAX_DEPTH],
    len: usize,
}

/// A resolved leaf: its type, handler and the path's indices.
struct Resolved {
    ty: Type,
    /// The type of a written value (`ty` but for `Node::Query`).
    wty: Type,
    /// Writes and actions need `unchecked` access.
    unsafe_: bool,
    readable: bool,
    writable: bool,
    /// Can be run without a value (`Node::WoOpt`).
    runnable: bool,
    handler: Handler,
    idx: [usize; MAX_DEPTH],
    nidx: usize,
}

impl Mib {
    /// Resolves `name` (a whole name; a prefix such as `arena.0` resolves
    /// too, for `components`).
    pub fn new(name: &str) -> Result<Mib, Error> {
        let mut mib = Mib {
            comps: [0; MAX_DEPTH],
            len: 0,
        };
        let mut node = &tree::ROOT;
        for word in name.split('.') {
            if mib.len == MAX_DEPTH {
                return Err(Error::NotFound);
            }
            let (comp, next) = child_named(node, word)?;
            mib.comps[mib.len] = comp;
            mib.len += 1;
            node = next;
        }
        Ok(mib)
    }

    /// Builds a MIB from numbers (as `mallctlbymib` receives them).
    pub fn from_components(comps: &[usize]) -> Result<Mib, Error> {
        if comps.len() > MAX_DEPTH {
            return Err(Error::NotFound);
        }
        let mut mib = Mib {
            comps: [0; MAX_DEPTH],
            len: comps.len(),
        };
        mib.comps[..comps.len()].copy_from_slice(comps);
        Ok(mib)
    }

    /// The numbers.
    pub fn components(&self) -> &[usize] {
        &self.comps[..self.len]
    }

    /// Replaces component `pos` (for example the arena index of
    /// `arena.0.purge`, position 1). Out-of-range positions are ignored;
    /// bad indices are reported when the MIB is used.
    pub fn set_index(&mut self, pos: usize, index: usize) {
        if pos < self.len {
            self.comps[pos] = index;
        }
    }

    /// The type of the control this MIB names.
    pub fn ty(&self) -> Result<Type, Error> {
        self.target().map(|t| t.ty)
    }

    /// The type of a value written to the control: its type, except for
    /// queries such as `arenas.lookup` (written a pointer, read a number).
    pub fn write_ty(&self) -> Result<Type, Error> {
        self.target().map(|t| t.wty)
    }

    /// Whether the control can be written.
    pub fn writable(&self) -> Result<bool, Error> {
        self.target().map(|t| t.writable)
    }

    /// Whether the control can be run without a value as well as written
    /// (`prof.dump`, `prof.reset`).
    pub fn runnable(&self) -> Result<bool, Error> {
        self.target().map(|t| t.runnable)
    }

    /// Whether the control can be read (not a write-only one).
    pub fn readable(&self) -> Result<bool, Error> {
        self.target().map(|t| t.readable)
    }

    /// Reads the control (an action cannot be read: `Permission`).
    pub fn read(&self) -> Result<Value, Error> {
        self.access(None, false, false)
    }

    /// Writes `v` (exactly the control's write type, else `Invalid`) and
    /// returns the old value. Controls that can break memory safety
    /// answer `Unsafe`: see `write_unchecked`.
    pub fn write(&self, v: Value) -> Result<Value, Error> {
        self.access(Some(v), false, false)
    }

    /// Runs an action (a `Void` control; others: `Invalid`). Actions that
    /// can break memory safety answer `Unsafe`: see `run_unchecked`.
    pub fn run(&self) -> Result<(), Error> {
        self.access(None, true, false).map(|_| ())
    }

    /// `write`, also for controls that can break memory safety
    /// (`arena.<i>.extent_hooks`, `arenas.create` with hooks).
    ///
    /// # Safety
    /// The control's contract, as jemalloc documents it: for extent hooks,
    /// `v` points to an `extent_hooks_t` whose functions keep jemalloc's
    /// conventions and which stays valid while any arena uses it.
    pub unsafe fn write_unchecked(&self, v: Value) -> Result<Value, Error> {
        self.access(Some(v), false, true)
    }

    /// `run`, also for actions that can break memory safety.
    ///
    /// # Safety
    /// The action's contract, as jemalloc documents it: for
    /// `arena.<i>.reset` and `arena.<i>.destroy`, no block of the arena is
    /// used again, no thread cache (other than the caller's, which is
    /// flushed first) holds one, and no other thread uses the arena
    /// meanwhile.
    pub unsafe fn run_unchecked(&self) -> Result<(), Error> {
        self.access(None, true, true).map(|_| ())
    }

    /// One access: runs an action (`run`), or reads, or writes `new` and
    /// returns the old value; `unchecked` allows unsafe controls.
    pub(crate) fn access(
        &self,
        new: Option<Value>,
        run: bool,
        unchecked: bool,
    ) -> Result<Value, Error> {
        let t = self.target()?;
        match (t.ty, run) {
            (Type::Void, false) => return Err(Error::Permission),
            (Type::Void, true) => {}
            (_, true) if t.runnable => {}
            (_, true) => return Err(Error::Invalid),
            _ if new.is_some() && !t.writable => return Err(Error::Permission),
            _ if new.is_none() && !t.readable => return Err(Error::Permission),
            (_, false) if new.is_some_and(|v| v.ty() != t.wty) => return Err(Error::Invalid),
            _ => {}
        }
        // Running a `WoOpt` control passes no value: nothing unsafe.
        if t.unsafe_ && (new.is_some() || (run && !t.runnable)) && !unchecked {
            return Err(Error::Unsafe);
        }
        if !init::ensure() {
            return Err(Error::Again);
        }
        (t.handler)(&t.idx[..t.nidx], new)
    }

    fn target(&self) -> Result<Resolved, Error> {
        let mut node = &tree::ROOT;
        let mut idx = [0; MAX_DEPTH];
        let mut nidx = 0;
        let mut unsafe_ = false;
        for &c in self.components() {
            while let Node::Unsafe(inner) = node {
                unsafe_ = true;
                node = inner;
            }
            node = match node {
                Node::Named(children) => &children.get(c).ok_or(Error::NotFound)?.1,
                Node::Indexed(bound, child) => {
                    if c >= *bound {
                        return Err(Error::NotFound);
                    }
                    idx[nidx] = c;
                    nidx += 1;
                    child
                }
                Node::Options => {
                    let opt = conf::OPTIONS.get(c).ok_or(Error::NotFound)?;
                    let ty = option_type(opt).ok_or(Error::NotFound)?;
                    if self.len != 2 {
                        return Err(Error::NotFound);
                    }
                    idx[0] = c;
                    return Ok(Resolved {
                        ty,
                        wty: ty,
                        unsafe_: false,
                        readable: true,
                        writable: false,
                        runnable: false,
                        handler: read_option,
                        idx,
                        nidx: 1,
                    });
                }
                Node::Leaf(..)
                | Node::Rw(..)
                | Node::Wo(..)
                | Node::WoOpt(..)
                | Node::Query(..) => return Err(Error::NotFound),
                Node::Unsafe(_) => unreachable!("unwrapped above"),
            };
        }
        while let Node::Unsafe(inner) = node {
            unsafe_ = true;
            node = inner;
        }
        let (ty, wty, handler) = match node {
            Node::Leaf(ty, h) | Node::Rw(ty, h) | Node::Wo(ty, h) | Node::WoOpt(ty, h) => {
                (*ty, *ty, *h)
            }
            Node::Query(ty, wty, h) => (*ty, *wty, *h),
            _ => return Err(Error::NotFound),
        };
        Ok(Resolved {
            ty,
            wty,
            unsafe_,
            readable: !matches!(node, Node::Wo(..) | Node::WoOpt(..)),
            writable: matches!(
                node,
                Node::Rw(..) | Node::Wo(..) | Node::WoOpt(..) | Node::Query(..)
            ),
            runnable: matches!(node, Node::WoOpt(..)),
            handler,
            idx,
            nidx,
        })
    }
}

/// The child of `node` called `word`, and its MIB component.
fn child_named(node: &'static Node, word: &str) -> Result<(usize, &'static Node), Error> {
    match node {
        Node::Unsafe(inner) => child_named(inner, word),
        Node::Named(children) => children
            .iter()
            .position(|(n, _)| *n == word)
            .map(|i| (i, &children[i].1))
            .ok_or(Error::NotFound),
        Node::Indexed(bound, child) => match word.parse::<usize>() {
            Ok(i) if i < *bound && (i == 0 || !word.starts_with('0')) => Ok((i, child)),
            _ => Err(Error::NotFound),
        },
        Node::Options => conf::OPTIONS
            .iter()
            .position(|o| o.name == word && option_type(o).is_some())
            .map(|i| (i, &OPTION_LEAF))
            .ok_or(Error::NotFound),
        Node::Leaf(..) | Node::Rw(..) | Node::Wo(..) | Node::WoOpt(..) | Node::Query(..) => {
            Err(Error::NotFound)
        }
    }
}

/// Stands for any option's leaf while a name is resolved.
static OPTION_LEAF: Node = Node::Leaf(Type::Void, read_option);

/// The control type of an option (None for options rjem ignores).
fn option_type(o: &conf::Opt) -> Option<Type> {
    o.current().map(|s| Value::from(s).ty())
}

fn read_option(idx: &[usize], new: Option<Value>) -> Result<Value, Error> {
    if new.is_some() {
        return Err(Error::Permission);
    }
    let s = conf::OPTIONS[idx[0]].current().ok_or(Error::NotFound)?;
    Ok(Value::from(s))
}

/// Reads control `name`.
pub fn read(name: &str) -> Result<Value, Error> {
    Mib::new(name)?.read()
}

/// Writes `v` to control `name` and returns its old value.
pub fn write(name: &str, v: Value) -> Result<Value, Error> {
    Mib::new(name)?.write(v)
}

/// Runs action `name` (a `Void` control such as `thread.tcache.flush`).
pub fn run(name: &str) -> Result<(), Error> {
    Mib::new(name)?.run()
}

/// `write` for controls that can break memory safety.
///
/// # Safety
/// See `Mib::write_unchecked`.
pub unsafe fn write_unchecked(name: &str, v: Value) -> Result<Value, Error> {
    // SAFETY: forwarded contract.
    unsafe { Mib::new(name)?.write_unchecked(v) }
}

/// `run` for actions that can break memory safety.
///
/// # Safety
/// See `Mib::run_unchecked`.
pub unsafe fn run_unchecked(name: &str) -> Result<(), Error> {
    // SAFETY: forwarded contract.
    unsafe { Mib::new(name)?.run_unchecked() }
}

/// Target arenas an operation applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// One arena by index (`arena.<i>`).
    Arena(usize),
    /// Every arena (`arena.<ARENAS_ALL>`).
    All,
}

impl Target {
    fn index(self) -> usize {
        match self {
            Target::Arena(i) => i,
            Target::All => ARENAS_ALL,
        }
    }
}

/// `arena.<i>.<leaf>` as a MIB.
fn arena_mib(w: Target, leaf: &str) -> Result<Mib, Error> {
    let mut m = Mib::new("arena.0")?;
    m.set_index(1, w.index());
    let (c, _) = child_named(&tree::ARENA_I, leaf)?;
    m.comps[m.len] = c;
    m.len += 1;
    Ok(m)
}

/// Purges every freed (dirty and muzzy) page of the arena(s) now
/// (`arena.<i>.purge`).
pub fn purge(w: Target) -> Result<(), Error> {
    arena_mib(w, "purge")?.run()
}

/// Runs decay now: purges what the decay curves say is due
/// (`arena.<i>.decay`).
pub fn decay(w: Target) -> Result<(), Error> {
    arena_mib(w, "decay")?.run()
}

/// Sets the dirty and/or muzzy decay time (-1 never, 0 at once, up to a
/// year) of one arena (`arena.<i>.dirty_decay_ms`); with `Target::All`, of
/// every automatic arena and of those created later. None leaves one
/// unchanged.
pub fn set_decay_ms(w: Target, dirty: Option<i64>, muzzy: Option<i64>) -> Result<(), Error> {
    // Both or neither.
    if [dirty, muzzy]
        .iter()
        .flatten()
        .any(|&ms| !decay::valid_ms(ms))
    {
        return Err(Error::Fault);
    }
    for (leaf, v) in [("dirty_decay_ms", dirty), ("muzzy_decay_ms", muzzy)] {
        if let Some(ms) = v {
            arena_mib(w, leaf)?.write(Value::Isize(ms as isize))?;
        }
    }
    Ok(())
}

/// (dirty, muzzy) decay times of arena `i`; of new arenas for `All`.
pub fn decay_ms(w: Target) -> Result<(i64, i64), Error> {
    let read = |leaf| match arena_mib(w, leaf)?.read()? {
        Value::Isize(ms) => Ok(ms as i64),
        _ => Err(Error::Invalid),
    };
    Ok((read("dirty_decay_ms")?, read("muzzy_decay_ms")?))
}

/// Whether the background purger thread is running
/// (`stats.background_thread.num_threads` > 0).
pub fn background_thread_running() -> bool {
    matches!(
        read("stats.background_thread.num_threads"),
        Ok(Value::Usize(n)) if n > 0
    )
}

/// One option rjem knows (see the README's option list).
#[derive(Clone, Copy, Debug)]
pub struct OptionInfo {
    /// jemalloc's name for it, as written in `MALLOC_CONF`.
    pub name: &'static str,
    /// What it does, in one line.
    pub doc: &'static str,
    /// Whether rjem implements it (otherwise it is accepted and ignored).
    pub implemented: bool,
    /// Its default; None for ignored options and for aliases of another
    /// option (`lg_tcache_max`).
    pub default: Option<OptionValue>,
    /// Its value in force; None where `default` is.
    pub value: Option<OptionValue>,
    /// The control that changes it while the program runs, if any.
    pub runtime: Option<&'static str>,
}

/// Every option, in table order (the values in force need rjem started,
/// which this does; they are None if it cannot start).
pub fn options() -> impl Iterator<Item = OptionInfo> {
    let started = init::ensure();
    conf::OPTIONS.iter().map(move |o| OptionInfo {
        name: o.name,
        doc: o.doc,
        implemented: !matches!(o.kind, conf::Kind::Ignored { .. }),
        default: o.default(),
        value: o.current().filter(|_| started),
        runtime: o.runtime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_mibs_and_back() {
        let m = Mib::new("arena.7.purge").unwrap();
        assert_eq!(m.components()[1], 7);
        assert_eq!(Mib::from_components(m.components()), Ok(m));
        assert_eq!(Mib::new("arena.x.purge"), Err(Error::NotFound));
        assert_eq!(Mib::new("arena.01.purge"), Err(Error::NotFound));
        assert_eq!(Mib::new("arena.4097.purge"), Err(Error::NotFound));
        assert_eq!(Mib::new("nope"), Err(Error::NotFound));
        assert_eq!(
            Mib::new("opt.prof_stats"),
            Err(Error::NotFound),
            "ignored options have no leaf"
        );
        assert!(Mib::new("opt.junk").is_ok(), "fixed ones read back");
        assert!(Mib::new("opt.narenas").is_ok());
        // A prefix resolves; using it does not.
        assert_eq!(Mib::new("arena.0").unwrap().read(), Err(Error::NotFound));
    }

    #[test]
    fn every_runtime_control_of_the_table_exists() {
        for o in conf::OPTIONS {
            if let Some(name) = o.runtime {
                assert!(Mib::new(name).unwrap().ty().is_ok(), "{name}");
            }
        }
    }
}
