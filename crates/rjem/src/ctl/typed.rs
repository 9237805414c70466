//! Typed access to the controls, in the spirit of `tikv-jemalloc-ctl`: one
//! module per name with `read`, `write` (where writable) and `mib` (the
//! name resolved once, for cheap repeated reads).
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: rjem::Rjem = rjem::Rjem;
//!
//! use rjem::ctl::{epoch, stats, thread};
//!
//! let v = vec![0u8; 1 << 20];
//! epoch::advance().unwrap();
//! let allocated = stats::allocated::read().unwrap();
//! assert!(allocated >= 1 << 20);
//!
//! // Resolve once, read often.
//! let active = stats::active::mib().unwrap();
//! epoch::advance().unwrap();
//! assert!(active.read().unwrap() >= allocated);
//!
//! assert!(thread::allocated::read().unwrap() >= 1 << 20);
//! drop(v);
//! ```

use super::{Error, Mib, Value};
use core::ffi::CStr;
use core::marker::PhantomData;

/// A Rust type a control's value converts to and from.
pub trait CtlType: Sized + Copy {
    /// The value as this type (None if the control has another type).
    fn from_value(v: Value) -> Option<Self>;
    /// This type as a value.
    fn into_value(self) -> Value;
}

macro_rules! ctl_type {
    ($($t:ty => $variant:ident),*) => {$(
        impl CtlType for $t {
            fn from_value(v: Value) -> Option<Self> {
                match v {
                    Value::$variant(x) => Some(x),
                    _ => None,
                }
            }
            fn into_value(self) -> Value {
                Value::$variant(self)
            }
        }
    )*};
}

ctl_type!(bool => Bool, u32 => U32, u64 => U64, usize => Usize, isize => Isize, &'static CStr => Str);

/// A control resolved to its MIB, with its Rust type.
#[derive(Clone, Copy, Debug)]
pub struct TypedMib<T> {
    mib: Mib,
    ty: PhantomData<T>,
}

impl<T: CtlType> TypedMib<T> {
    /// Resolves `name`.
    pub fn new(name: &str) -> Result<Self, Error> {
        Ok(TypedMib {
            mib: Mib::new(name)?,
            ty: PhantomData,
        })
    }

    /// Reads the value.
    pub fn read(&self) -> Result<T, Error> {
        T::from_value(self.mib.read()?).ok_or(Error::Invalid)
    }

    /// Writes `v`; returns the old value where the control has one.
    pub fn write(&self, v: T) -> Result<Option<T>, Error> {
        Ok(T::from_value(self.mib.write(v.into_value())?))
    }
}

/// One module per control: `read`, `mib`, and `write` when marked `rw`.
macro_rules! leaf {
    ($(#[$doc:meta])* $name:ident, $path:literal, $t:ty $(, $rw:ident)?) => {
        $(#[$doc])*
        pub mod $name {
            #[allow(unused_imports)]
            use super::*;
            /// The control's name.
            pub const NAME: &str = $path;
            /// Reads the value.
            pub fn read() -> Result<$t, Error> {
                mib()?.read()
            }
            /// The name resolved once, for cheap repeated reads.
            pub fn mib() -> Result<TypedMib<$t>, Error> {
                TypedMib::new(NAME)
            }
            $(leaf!(@$rw $t);)?
        }
    };
    (@rw $t:ty) => {
        /// Writes `v` and returns the old value.
        pub fn write(v: $t) -> Result<$t, Error> {
            mib()?.write(v)?.ok_or(Error::Invalid)
        }
    };
}

/// `epoch`: refreshes the statistics snapshot.
pub mod epoch {
    use super::*;
    /// Refreshes `stats.*` and returns the new epoch.
    pub fn advance() -> Result<u64, Error> {
        TypedMib::<u64>::new("epoch")?
            .write(1)?
            .ok_or(Error::Invalid)
    }
}

leaf!(
    /// `version`: jemalloc's API version rjem implements.
    version, "version", &'static CStr
);
leaf!(
    /// `background_thread`: whether the purger thread runs.
    background_thread, "background_thread", bool, rw
);
leaf!(
    /// `max_background_threads`.
    max_background_threads, "max_background_threads", usize, rw
);

/// `stats.*`: process totals as of the last `epoch::advance`.
pub mod stats {
    use super::*;
    leaf!(
        /// Bytes of live blocks at their usable size.
        allocated, "stats.allocated", usize
    );
    leaf!(
        /// Bytes of pages in active extents.
        active, "stats.active", usize
    );
    leaf!(
        /// Bytes of allocator metadata.
        metadata, "stats.metadata", usize
    );
    leaf!(
        /// An upper bound of the bytes resident.
        resident, "stats.resident", usize
    );
    leaf!(
        /// Bytes mapped and not retained.
        mapped, "stats.mapped", usize
    );
    leaf!(
        /// Bytes of address space retained for reuse.
        retained, "stats.retained", usize
    );
}

/// `thread.*`: the calling thread.
pub mod thread {
    use super::*;
    leaf!(
        /// Bytes this thread allocated so far (usable sizes, exact).
        allocated, "thread.allocated", u64
    );
    leaf!(
        /// Bytes this thread freed so far.
        deallocated, "thread.deallocated", u64
    );
    leaf!(
        /// The arena this thread allocates from; writing rebinds it.
        arena, "thread.arena", u32, rw
    );
    /// A counter of the calling thread read through a pointer
    /// (`thread.allocatedp`, `thread.deallocatedp`): cheap to read
    /// often. It is refreshed at every cache fill and flush and every
    /// allocation or free outside the cache (blocks served by the cache
    /// since then are not counted yet); `allocated::read` is exact.
    /// Tied to the thread that asked for it (neither `Send` nor `Sync`).
    #[derive(Debug)]
    pub struct ThreadCounter {
        p: *const u64,
        _thread: PhantomData<*const ()>,
    }

    impl ThreadCounter {
        /// The counter's value now.
        pub fn get(&self) -> u64 {
            // SAFETY: `p` points at the calling thread's counter (this
            // value cannot leave the thread), valid while the thread runs;
            // only this thread writes it.
            unsafe { self.p.read_volatile() }
        }
    }

    fn counter(name: &str) -> Result<ThreadCounter, Error> {
        match crate::ctl::read(name)? {
            Value::Ptr(p) if !p.is_null() => Ok(ThreadCounter {
                p: p.cast(),
                _thread: PhantomData,
            }),
            _ => Err(Error::Invalid),
        }
    }

    /// `thread.allocatedp`: bytes allocated, through a pointer.
    pub mod allocatedp {
        use super::*;
        /// The calling thread's counter.
        pub fn read() -> Result<ThreadCounter, Error> {
            counter("thread.allocatedp")
        }
    }

    /// `thread.deallocatedp`: bytes freed, through a pointer.
    pub mod deallocatedp {
        use super::*;
        /// The calling thread's counter.
        pub fn read() -> Result<ThreadCounter, Error> {
            counter("thread.deallocatedp")
        }
    }

    /// `thread.peak.*`.
    pub mod peak {
        use super::*;
        /// The highest allocated - deallocated since the last reset.
        pub fn read() -> Result<u64, Error> {
            TypedMib::<u64>::new("thread.peak.read")?.read()
        }
        /// Starts a new peak measurement.
        pub fn reset() -> Result<(), Error> {
            crate::ctl::run("thread.peak.reset")
        }
    }
}

/// `arenas.*` and the arena operations.
pub mod arenas {
    use super::*;
    leaf!(
        /// Arena indices in use.
        narenas, "arenas.narenas", u32
    );
    leaf!(
        /// The page size.
        page, "arenas.page", usize
    );
    leaf!(
        /// The decay time new arenas get.
        dirty_decay_ms, "arenas.dirty_decay_ms", isize, rw
    );
    /// Creates an arena for `MALLOCX_ARENA`; returns its index.
    pub fn create() -> Result<u32, Error> {
        TypedMib::<u32>::new("arenas.create")?.read()
    }

    /// `arenas.lookup`: the arena that owns `p` (`Invalid` if rjem did
    /// not allocate it). Only looks the address up: any pointer is fine.
    pub fn lookup<T>(p: *const T) -> Result<u32, Error> {
        match crate::ctl::write("arenas.lookup", Value::Ptr(p.cast_mut().cast()))? {
            Value::U32(i) => Ok(i),
            _ => Err(Error::Invalid),
        }
    }
}

/// `arena.<i>.*`: operations on one arena.
pub mod arena {
    use super::*;
    use crate::ctl::Mib;

    /// `name` (an `arena.0.*` name) for arena `i`.
    fn mib(i: u32, name: &str) -> Result<Mib, Error> {
        let mut m = Mib::new(name)?;
        m.set_index(1, i as usize);
        Ok(m)
    }

    /// `arena.<i>.purge`: purges the arena's free pages now.
    pub fn purge(i: u32) -> Result<(), Error> {
        mib(i, "arena.0.purge")?.run()
    }

    /// `arena.<i>.reset`: discards every allocation of manual arena `i`
    /// (the caller's cache is flushed first).
    ///
    /// # Safety
    /// No block of the arena is used again, no other thread's cache (or
    /// explicit cache) holds one, and no other thread uses the arena
    /// meanwhile.
    pub unsafe fn reset(i: u32) -> Result<(), Error> {
        // SAFETY: forwarded contract.
        unsafe { mib(i, "arena.0.reset")?.run_unchecked() }
    }

    /// `arena.<i>.destroy`: `reset`, then the arena's memory goes back and
    /// its index is free again.
    ///
    /// # Safety
    /// As for `reset`.
    pub unsafe fn destroy(i: u32) -> Result<(), Error> {
        // SAFETY: forwarded contract.
        unsafe { mib(i, "arena.0.destroy")?.run_unchecked() }
    }
}
