// Package symbolize turns what the kernel side captured at a syscall into a symbolized
// user call stack.
//
// The BPF programs capture the user registers, a copy of the top of the user stack and
// the kernel's own frame-pointer walk. A frame-pointer walk alone is wrong from a
// syscall: glibc's wrappers keep no frame pointer and some reuse %rbp, so the walk skips
// the wrapper's caller or follows garbage. The Unwinder therefore steps with the
// modules' call frame information (.eh_frame, or .debug_frame where a module has no
// .eh_frame, as Go binaries do), reading memory from the stack copy, falls back to
// frame pointers where a module has no CFI for an address, and joins the kernel's walk
// where the stack copy runs out.
//
// Frames are then made stable (Locate: module path and ELF virtual address, valid after
// the process is gone) and symbolized (Cache.Symbolize: function, file:line, from
// .gopclntab for Go, .symtab/.dynsym and DWARF for everything else).
//
// Only x86-64 is supported: register numbers, the page size and the frame layout are
// those of the x86-64 System V ABI.
package symbolize
