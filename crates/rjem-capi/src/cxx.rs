//! C++ `operator new` and `operator delete`, every standard form, exported
//! under their Itanium-ABI names so C++ programs use rjem unchanged.
//!
//! The `new` operators are naked jumps to `cxx.c`, whose failure path
//! hands the request to the C++ runtime's operator new, which may throw
//! `std::bad_alloc`: no Rust frame is on the stack when it does. The
//! `delete` operators never throw and are plain Rust: sized deletes take
//! the checked sized-free path, the others `free`.

use core::ffi::c_void;

extern "C" {
    fn rjem_cxx_new(n: usize) -> *mut c_void;
    fn rjem_cxx_new_nothrow(n: usize, tag: *const c_void) -> *mut c_void;
    fn rjem_cxx_new_aligned(n: usize, align: usize) -> *mut c_void;
    fn rjem_cxx_new_aligned_nothrow(n: usize, align: usize, tag: *const c_void) -> *mut c_void;
}

macro_rules! jump_to {
    ($($name:literal => $target:ident),* $(,)?) => {$(
        const _: () = {
            /// A C++ operator new: tail-jumps to its C implementation,
            /// which takes the same arguments.
            #[unsafe(naked)]
            #[export_name = $name]
            unsafe extern "C" fn op() {
                core::arch::naked_asm!("jmp {f}", f = sym $target)
            }
        };
    )*};
}

jump_to! {
    "_Znwm" => rjem_cxx_new,
    "_Znam" => rjem_cxx_new,
    "_ZnwmRKSt9nothrow_t" => rjem_cxx_new_nothrow,
    "_ZnamRKSt9nothrow_t" => rjem_cxx_new_nothrow,
    "_ZnwmSt11align_val_t" => rjem_cxx_new_aligned,
    "_ZnamSt11align_val_t" => rjem_cxx_new_aligned,
    "_ZnwmSt11align_val_tRKSt9nothrow_t" => rjem_cxx_new_aligned_nothrow,
    "_ZnamSt11align_val_tRKSt9nothrow_t" => rjem_cxx_new_aligned_nothrow,
}

macro_rules! delete_plain {
    ($($name:literal),*) => {$(
        const _: () = {
            #[export_name = $name]
            unsafe extern "C" fn op(p: *mut c_void) {
                // SAFETY: C++ passes null or a pointer from operator new.
                unsafe { rjem::ffi::free(p) }
            }
        };
    )*};
}

macro_rules! delete_sized {
    ($($name:literal, $aligned:literal);*) => {$(
        const _: () = {
            #[export_name = $name]
            unsafe extern "C" fn op(p: *mut c_void, n: usize, align: usize) {
                let align = if $aligned { align } else { 1 };
                // SAFETY: C++ passes null, or a block with the size (and
                // alignment) it allocated it with.
                unsafe { rjem::ffi::delete_sized(p, n, align) }
            }
        };
    )*};
}

// Plain, nothrow and aligned-unsized deletes ignore their extra arguments.
delete_plain!(
    "_ZdlPv",
    "_ZdaPv",
    "_ZdlPvRKSt9nothrow_t",
    "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvSt11align_val_t",
    "_ZdaPvSt11align_val_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t"
);

delete_sized!(
    "_ZdlPvm", false;
    "_ZdaPvm", false;
    "_ZdlPvmSt11align_val_t", true;
    "_ZdaPvmSt11align_val_t", true
);
