/* The whole contract between leaktrace's BPF programs and its Go side.
 * Fixed-width types and explicit padding only: Go types are generated from
 * this file by bpf2go (-type), never mirrored by hand. */
#ifndef LEAKTRACE_H
#define LEAKTRACE_H

#define LT_COMM_LEN 16
#define LT_NAME_LEN 64      /* dentry name of an fd's file: "[eventfd]", "libc.so.6" */
#define LT_PATH_LEN 256     /* path argument of open-like syscalls */
#define LT_KSTACK_MAX 64    /* frames of the kernel's frame-pointer walk */
#define LT_STACK_MAX 8192   /* bytes of user stack copied from sp */
#define LT_PATH_DEPTH 16    /* components of a path rebuilt from dentries */
#define LT_FDBITS_WORDS 64  /* open-fd bitmap words sent at exec: fds 0..4095 */

enum lt_event_type {
	LT_EV_FD_OPEN = 1,     /* fd (and fd2) installed by a syscall */
	LT_EV_FD_CLOSE = 2,    /* fd released by close */
	LT_EV_CLOSE_RANGE = 3, /* [fd, fd2] released (or marked cloexec) */
	LT_EV_TASK_NEW = 4,    /* fork, vfork, clone: thread or process */
	LT_EV_EXEC = 5,        /* exec done: cloexec fds are already closed */
	LT_EV_TASK_EXIT = 6,   /* a thread exits; group_dead when it was the last */
	LT_EV_MMAP = 7,        /* an executable file mapping (for symbolization) */
	LT_EV_EXIT_GROUP = 8,  /* exit_group entered: threads still running now leak */
	LT_EV_REAP = 9,        /* wait4/waitid reaped child_pid */
	LT_EV_FD_UPDATE = 10,  /* fd's description changed: socket bound, connected */
	LT_EV_FD_FAIL = 11,    /* an fd-creating syscall failed with EMFILE or ENFILE (ret) */
	LT_EV_MAP_NEW = 12,    /* [addr, addr+len) mapped: mmap, or brk that grew (bpf/mapping.h) */
	LT_EV_MAP_FREE = 13,   /* [addr, addr+len) unmapped: munmap, or brk that shrank */
	LT_EV_MAP_MOVE = 14,   /* mremap: [old_addr, +old_len) became [addr, +len) */
	LT_EV_MAP_PROT = 15,   /* mprotect: [addr, addr+len) is now prot (a stack unless PROT_NONE) */
	LT_EV_FILE_ID = 16,    /* the file the kernel maps at a copy's first pc, as it names it (bpf/stack.h) */
	LT_EV_PY_STACK = 32,   /* Python frames of the record that follows (bpf/python.h) */
	LT_EV_PY_CODE = 33,    /* a code object's names, read when the kernel first saw it */
};

/* Bits of lt_fd_event.flags. */
#define LT_FD_CLOEXEC (1U << 0)
#define LT_FD_TRUNCATED_PATH (1U << 1)
#define LT_FD_HAS_SOCK (1U << 2)
#define LT_FD_UNSHARE (1U << 3)   /* close_range with CLOSE_RANGE_UNSHARE */
#define LT_FD_ONLY_CLOEXEC (1U << 4) /* close_range with CLOSE_RANGE_CLOEXEC */
#define LT_FD_RECEIVED (1U << 5)  /* installed by recvmsg/recvmmsg from SCM_RIGHTS */
#define LT_FD_DPATH (1U << 6)     /* path holds dentry names, leaf first, LT_NAME_LEN each */
#define LT_FD_DPATH_FULL (1U << 7) /* ... and they reach the root */
#define LT_FD_CHECKED (1U << 8)   /* no enter time: the fd was seen installed at exit (h.ts) */
#define LT_FD_GONE (1U << 9)      /* ... or not: another thread closed it before the syscall returned */
#define LT_FD_DPATH_DEPTH (LT_PATH_LEN / LT_NAME_LEN)
#define LT_FD_PY_SHUTDOWN (1U << 16) /* closed while the Python interpreter was finalizing */

struct lt_header {
	__u64 ts;    /* bpf_ktime_get_ns */
	__u64 files; /* kernel address of the task's files_struct: the fd table's identity */
	__u32 pid;   /* tgid */
	__u32 tid;
	__u16 type;  /* enum lt_event_type */
	__u16 nr;    /* syscall number, 0 for sched events */
	__u32 size;  /* bytes of this record actually sent */
	char comm[LT_COMM_LEN];
};

/* A user stack as captured in the kernel. The kernel unwinds what it can
 * with the rules Go learned from earlier stacks of the same process image
 * (struct lt_rule, struct lt_image): a stack unwound whole is named by a site hash, and its
 * pcs are sent only the first time (LT_STK_NEW), after that only the site
 * (LT_STK_SITE, the record cut before kstack). Where a rule is missing the
 * kernel stops, and Go goes on from the registers of that frame: kstack's
 * first `known` entries are the frames before it, then the kernel's
 * frame-pointer walk from there, and stack a copy of the stack from sp so
 * that Go can unwind code without frame pointers through its CFI. */
#define LT_STK_SITE (1U << 0) /* site: Go has its pcs from an earlier record */
#define LT_STK_NEW (1U << 1)  /* kstack[:known] is the whole stack of site, first sent */
#define LT_STK_TEACH (1U << 2) /* a copy from a frame Go has not taught the kernel yet: never parked */
#define LT_STK_SHARED (1U << 3) /* site (img 0) named by file offsets: the same in every process */

struct lt_stack {
	__u64 ip;          /* registers of the frame Go unwinds from */
	__u64 sp;
	__u64 bp;
	__u64 site;        /* LT_STK_SITE, LT_STK_NEW: hash of the stack's pcs */
	__u64 img;         /* the process image the pcs belong to (struct lt_image) */
	__u32 flags;       /* LT_STK_* */
	__u32 _pad;
	__u32 known;       /* kstack[:known]: pcs unwound by rules, innermost first, before ip */
	__u32 kstack_len;  /* entries in kstack: the known ones, then the frame-pointer walk from ip */
	__u32 stack_len;   /* bytes in stack (copy of [sp, sp+stack_len)) */
	__u64 kstack[LT_KSTACK_MAX]; /* records with neither flag and no stack copy end after kstack_len */
	__u8 stack[LT_STACK_MAX]; /* last: records are cut after stack_len bytes */
};

/* A process image: pcs are absolute, so rules and sites are kept per
 * layout of executable code. An exec (or a tgid reused) starts a new one; a
 * forked child shares its parent's (the same code at the same addresses)
 * until either maps executable code from a file, which gives that one a
 * new image. */
struct lt_image {
	__u64 img;
	__u32 shared;      /* another process may have this image (fork) */
	__u32 maps_parked; /* its mappings waiting in the kernel for their munmap (bpf/pair.h) */
};

/* Key of the unwind rules and of the sites the kernel sent. */
struct lt_proc_pc {
	__u64 img;
	__u64 pc; /* a rule: the frame's pc (a return address but the first); a site: its hash */
};

/* Key of the unwind rules by file: the code at a file offset unwinds the
 * same in every process that maps it, so a new process (a shell's every
 * command) finds its rules without a stack copy. The file is named as the
 * kernel knows its inode; size and modification time tell a file from a
 * later one that got its inode number. */
struct lt_file_pc {
	__u64 ino;
	__u64 off; /* the pc's offset in the file */
	__s64 mtime_sec;
	__u64 size;
	__u32 dev; /* s_dev: major << 20 | minor */
	__u32 mtime_nsec;
};

/* Sent just ahead of a stack copy Go learns from: the file and offset the
 * kernel found at ip, the pc the copy starts from, as it keys rules by file.
 * Go keys the rules it teaches for that file so: the file Go opens may be
 * another name for it (overlayfs maps the layer's file, Go stats the
 * overlay's), and then its rules would never be found. */
struct lt_file_id_event {
	struct lt_header h;
	__u64 ip;
	struct lt_file_pc file;
};

/* Kinds of lt_rule. */
enum lt_rule_kind {
	LT_RULE_STEP = 1, /* the caller's frame is found by the rule */
	LT_RULE_LAST = 2, /* the outermost frame: the stack ends with this pc */
	LT_RULE_END = 3,  /* this return address is no frame: the stack ends before it */
};

/* How to find a caller's frame from a pc, as Go's CFI unwinder found it:
 * CFA = (sp or bp) + cfa_off, the return address at CFA + ra_off, the
 * caller's bp at CFA + bp_off (or unchanged when bp_saved is 0). */
struct lt_rule {
	__s32 cfa_off;
	__s16 ra_off;
	__s16 bp_off;
	__u8 kind;     /* enum lt_rule_kind */
	__u8 cfa_bp;   /* CFA from bp, not sp */
	__u8 bp_saved;
	__u8 _pad[5];
	/* The pc's place in its file, hashed (a rule taught by file), 0 for
	 * one taught for the image alone: a stack whose every frame has one
	 * is the same site in every process that runs that code. */
	__u64 tag;
};

struct lt_sock {
	__u16 family;
	__u16 type;
	__u16 protocol;
	__u16 sport; /* host order */
	__u16 dport; /* host order */
	__u16 state;
	__u32 _pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct lt_fd_event {
	struct lt_header h;
	__s32 fd;
	__s32 fd2;     /* second fd of pipe/socketpair; dup2 source; close_range last */
	__s64 ret;     /* syscall return value */
	__u32 flags;   /* LT_FD_* */
	__u32 mode;    /* i_mode of the file behind fd */
	__u64 ino;     /* i_ino of the file behind fd */
	__u64 arg0;    /* first syscall argument (dirfd, domain, ...) */
	__u64 magic;   /* s_magic of the file's filesystem: pidfs, anon_inodefs, ... */
	__u64 enter_ts; /* when the syscall was entered (h.ts is its exit) */
	__u64 file;     /* kernel address of the struct file at fd when the record was made (0: none) */
	__u32 depth;    /* LT_FD_DPATH: components in path */
	__u32 _pad1;
	struct lt_sock sock;
	char name[LT_NAME_LEN];
	char path[LT_PATH_LEN];
	struct lt_stack stack; /* last */
};

struct lt_task_event {
	struct lt_header h;
	__u32 child_pid;  /* tgid of the new task */
	__u32 child_tid;
	__u64 child_files;
	__u32 is_thread;  /* same thread group */
	__u32 group_dead; /* exit: the thread group is gone */
	__s32 exit_code;  /* exit: task->exit_code (wait status form) */
	__u32 ppid;       /* exit: real parent's tgid */
	__u32 autoreap;   /* exit: the parent ignores SIGCHLD: no zombie will be left */
	__u32 _pad;
	struct lt_stack stack; /* last: creation stack of the new task */
};

struct lt_exec_event {
	struct lt_header h;
	__u32 old_tid;
	__u32 max_fds;
	__u64 at_entry;   /* AT_ENTRY from the new image's auxv */
	__u64 at_base;    /* AT_BASE: the interpreter's load address */
	__u32 depth;      /* components in path */
	__u32 fdbits_words;
	__u32 mnt_ns;     /* its mount namespace's inode number (0: unknown) */
	__u32 _pad;
	__u64 fdbits[LT_FDBITS_WORDS]; /* open fds after cloexec fds were closed */
	char path[LT_PATH_DEPTH][LT_NAME_LEN]; /* executable, leaf first */
};

/* Bits of lt_map_event.flags. */
#define LT_MAP_BRK (1U << 0)       /* the program break moved (brk), not mmap */
#define LT_MAP_FILE (1U << 1)      /* a file mapping: ino and name say which */
#define LT_MAP_SHARED (1U << 2)    /* MAP_SHARED */
#define LT_MAP_DONTUNMAP (1U << 3) /* mremap MREMAP_DONTUNMAP: the old range stays */
/* LT_FD_PY_SHUTDOWN (1 << 16) on LT_EV_MAP_FREE: unmapped while the Python
 * interpreter was finalizing (the program still held it at its end). */

/* A memory mapping made, released, moved or re-protected. Sizes are as the
 * syscall gave them; Go rounds to pages. LT_EV_MAP_NEW and LT_EV_MAP_PROT
 * (but to PROT_NONE) carry a stack. */
struct lt_map_event {
	struct lt_header h;
	__u64 addr;
	__u64 len;
	__u64 old_addr; /* LT_EV_MAP_MOVE */
	__u64 old_len;
	__u64 ino;      /* LT_MAP_FILE */
	__u32 flags;    /* LT_MAP_* */
	__u32 prot;
	char name[LT_NAME_LEN]; /* LT_MAP_FILE: the file's dentry name */
	struct lt_stack stack;  /* last: LT_EV_MAP_NEW's creation stack */
};

struct lt_mmap_event {
	struct lt_header h;
	__u64 addr;
	__u64 len;
	__u64 pgoff; /* bytes */
	__u64 ino;
	__u32 depth;
	__u32 _pad;
	char path[LT_PATH_DEPTH][LT_NAME_LEN]; /* mapped file, leaf first */
};

/* What a followed syscall does, described once per syscall in Go
 * (tracer/syscalls.go) and read by the kernel side from sys_table. */
enum lt_sys_class {
	LT_SYS_NONE = 0,        /* not followed */
	LT_SYS_OPEN = 1,        /* returns a new fd */
	LT_SYS_PAIR = 2,        /* writes two new fds to the int[2] at arg pair_arg */
	LT_SYS_DUP = 3,         /* returns a new fd, a copy of arg0 */
	LT_SYS_DUP_ONTO = 4,    /* dup2/dup3: arg1 becomes a copy of arg0, closing what it held */
	LT_SYS_FCNTL = 5,       /* fcntl: F_DUPFD and F_DUPFD_CLOEXEC create, as LT_SYS_DUP */
	LT_SYS_OPEN_OR_SAME = 6, /* signalfd: given an existing fd (arg0 >= 0), updates it */
	LT_SYS_CLOSE = 7,
	LT_SYS_CLOSE_RANGE = 8,
	LT_SYS_SOCK_ADDR = 9,   /* connect/bind/listen: arg0 got addresses */
	LT_SYS_RECVMSG = 10,    /* fds received through SCM_RIGHTS */
	LT_SYS_RECVMMSG = 11,
	LT_SYS_MMAP = 12,       /* executable file mappings, for symbolization */
	LT_SYS_WAIT4 = 13,      /* reaps the child it returns */
	LT_SYS_WAITID = 14,     /* reaps the child in its siginfo */
	LT_SYS_EXIT_GROUP = 15,
	LT_SYS_MUNMAP = 16,     /* mappings released (bpf/mapping.h) */
	LT_SYS_MREMAP = 17,     /* a mapping moved or resized */
	LT_SYS_BRK = 18,        /* the program break moved: enter parks the old one in args[1] */
	LT_SYS_MPROTECT = 19,   /* reserved (PROT_NONE) memory made accessible, or back */
};

/* Bits of lt_sys.flags. */
enum lt_sys_flag {
	LT_SYSF_PATH = 1 << 0,        /* path_arg holds a path */
	LT_SYSF_DPATH = 1 << 1,       /* name the file from its dentries when no absolute path says */
	LT_SYSF_CLOEXEC_HOW = 1 << 2, /* cloexec_arg points to struct open_how (flags first) */
	LT_SYSF_CLOEXEC_ALWAYS = 1 << 3, /* the new fd is always close-on-exec */
	LT_SYSF_ENTER = 1 << 4,       /* needs its enter hook (enter time, state before it): per-syscall hooks attach
				       * sys_enter only for these and read the others' arguments at exit */
};

struct lt_sys {
	__u8 class;       /* enum lt_sys_class */
	__u8 flags;       /* enum lt_sys_flag */
	__u8 path_arg;    /* argument index of the path */
	__u8 cloexec_arg; /* argument index of the flags with the cloexec bit; 0xff: none */
	__u32 cloexec_mask;
	__u8 pair_arg;    /* LT_SYS_PAIR: argument index of the int[2] */
	__u8 _pad[3];
};

#define LT_SYS_MAX 512 /* entries of sys_table: x86-64 syscall numbers */

/* Counters kept per CPU and read by the Go side. */
enum lt_counter {
	LT_CNT_RINGBUF_FULL = 0,  /* records dropped: ring buffer reserve/output failed */
	LT_CNT_INFLIGHT_FULL = 1, /* syscall enter not parked: no task storage (out of memory) */
	LT_CNT_TRACED_FULL = 2,   /* new process not added to the pid filter: map full */
	LT_CNT_MISSED_EXIT = 3,   /* syscall exit with no parked enter for an fd syscall */
	LT_CNT_EVENTS = 4,        /* records sent */
	LT_CNT_RIGHTS_DROPPED = 5, /* SCM_RIGHTS fds received but past what one event batch holds */
	LT_CNT_PAIRED = 6,        /* opens closed by the same thread's next syscall: never sent */
	LT_CNT_COMPAT = 7,        /* 32-bit syscalls of traced processes: not followed */
	LT_CNT_EVENT_BYTES = 8,   /* bytes of records sent */
	LT_CNT_STACK_SITE = 9,    /* stacks sent as a site Go knows: unwound in the kernel, no pcs, no copy */
	LT_CNT_STACK_NEW = 10,    /* stacks unwound in the kernel, sent with their pcs the first time */
	LT_CNT_STACK_COPY = 11,   /* stacks sent as registers and a copy: a frame had no rule yet */
	LT_CNT_FILE_RULE = 12,    /* rules an image got from its file's (taught for another process) */
	LT_CNT_STACK_MEMO = 13,   /* of LT_CNT_STACK_SITE: found from a memo of the same walk, not walked */
	LT_CNT_PY_STACKS = 14,    /* Python stacks walked in the kernel */
	LT_CNT_PY_THREAD_KNOWN = 15, /* of them, the thread state was the task's last one (checked, not searched for) */
	LT_CNT_MAX = 16,
};

/* Python (bpf/python.h). Go fills lt_py_proc per tgid once it has found the
 * interpreter: where _PyRuntime is and one layout value per CPython version
 * (offsets, and the LT_PY_L_* choices below). The kernel has one walk for
 * every version: what differs between versions is data, never a C path. */
#define LT_PY_FRAMES_MAX 128
#define LT_PY_THREADS_MAX 256

/* Bits of lt_py_proc.flags. */
#define LT_PY_L_CFRAME (1U << 0) /* tstate_frame is a _PyCFrame *: hop through cframe_current (3.11, 3.12) */
#define LT_PY_L_SHIM (1U << 1)   /* a marked frame is a C-stack shim below an eval call's first frame (3.12+),
				  * not that first frame itself (3.11's is_entry) */

struct lt_py_proc {
	__u64 runtime;            /* address of _PyRuntime */
	__u64 code_mask;          /* bits of the frame's code field that are the pointer (3.14 tags it) */
	__u32 version;            /* PY_VERSION_HEX */
	__u32 flags;              /* LT_PY_L_* */
	__u16 rt_finalizing;      /* _PyRuntime._finalizing (non-NULL: Py_Finalize began) */
	__u16 rt_interp_head;     /* _PyRuntime.interpreters.head */
	__u16 interp_tstate_head; /* PyInterpreterState.threads.head */
	__u16 tstate_next;
	__u16 tstate_native_tid;  /* PyThreadState.native_thread_id: the kernel tid */
	__u16 tstate_frame;       /* PyThreadState.current_frame, or .cframe (LT_PY_L_CFRAME) */
	__u16 cframe_current;     /* _PyCFrame.current_frame */
	__u16 frame_code;         /* _PyInterpreterFrame.f_code / f_executable */
	__u16 frame_previous;
	__u16 frame_instr;        /* prev_instr (3.11, 3.12) / instr_ptr (3.13+): the call in progress */
	__u16 frame_marker;       /* byte: is_entry (3.11) / owner (3.12+) */
	__u16 code_firstlineno;   /* PyCodeObject.co_firstlineno: checks the code cache */
	__u16 code_ident;         /* PyCodeObject.co_filename: tells a code object from a later one at its address */
	__u8 marker_min;          /* frame_marker >= this marks the frame (entry, or shim with LT_PY_L_SHIM) */
	/* The frame's fields above are read at once: frame_win_len bytes from
	 * frame_win; the code object's (firstlineno, ident) likewise. One
	 * read of the process's memory costs about what a read of a field
	 * does. Go sets them (python.Layout), at most LT_PY_WIN bytes. */
	__u8 frame_win_len;
	__u8 code_win_len;
	__u8 tstate_win_len; /* 0: a thread's state is always found by walking the list */
	__u8 _pad[2];
	/* What naming a code object needs, read in the kernel on first sight:
	 * by the time Go reads the process, the object may be gone (an
	 * imported module's code) or the process may have exited. */
	__u16 code_qualname;      /* PyCodeObject.co_qualname (str) */
	__u16 code_linetable;     /* PyCodeObject.co_linetable (bytes) */
	__u16 str_length;         /* PyASCIIObject.length */
	__u16 str_state;          /* PyASCIIObject.state */
	__u16 str_ascii_data;     /* sizeof(PyASCIIObject): where a compact ASCII str's bytes begin */
	__u16 bytes_size;         /* PyVarObject.ob_size of a bytes object */
	__u16 bytes_data;         /* PyBytesObject.ob_sval */
	__u16 frame_win;
	__u16 code_win;
	__u16 tstate_win;         /* a thread state's prev, native_tid and frame, read at once */
	__u16 tstate_prev;        /* PyThreadState.prev */
	__u16 _pad2;
};

#define LT_PY_WIN 256

/* Bits of lt_py_frame.flags. */
#define LT_PY_FRAME_ENTRY (1U << 0) /* first frame of a C-level eval call */

struct lt_py_frame {
	__u64 code;       /* PyCodeObject * */
	__u64 prev_instr; /* the instruction in progress in this frame */
	__u64 ident;      /* the code object's co_filename pointer: with firstlineno, its identity */
	__s32 firstlineno;
	__u32 flags;      /* LT_PY_FRAME_* */
};

/* Bits of lt_py_stack_event.status. */
#define LT_PY_NO_TSTATE (1U << 0)   /* no thread state has this tid */
#define LT_PY_TRUNCATED (1U << 1)   /* more frames than LT_PY_FRAMES_MAX */
#define LT_PY_FAULT (1U << 2)       /* a read of interpreter memory failed */
#define LT_PY_FINALIZING (1U << 3)  /* Py_Finalize had begun when the record was made */
#define LT_PY_FRESH (1U << 4)       /* names a code object the kernel had not seen: Go reads it now */

#define LT_PY_NAME_MAX 128      /* bytes of a qualname sent */
#define LT_PY_FILE_MAX 256      /* bytes of a filename sent */
#define LT_PY_LINETABLE_MAX 4096 /* bytes of a line table sent: its start when longer */

/* Bits of lt_py_code_event.flags. */
#define LT_PY_CODE_NAME (1U << 0)      /* qualname read (compact ASCII, whole) */
#define LT_PY_CODE_FILE (1U << 1)      /* filename read (compact ASCII, whole) */
#define LT_PY_CODE_LINETABLE (1U << 2) /* line table read (linetable_len bytes of its start) */

/* A code object's names, sent before the stack that first showed it. */
struct lt_py_code_event {
	struct lt_header h;
	__u64 code;      /* PyCodeObject * */
	__u64 ident;     /* co_filename pointer, as in lt_py_frame */
	__s32 firstlineno;
	__u32 flags;     /* LT_PY_CODE_* */
	__u32 name_len;
	__u32 file_len;
	__u32 linetable_len;
	__u32 _pad;
	char name[LT_PY_NAME_MAX];
	char file[LT_PY_FILE_MAX];
	__u8 linetable[LT_PY_LINETABLE_MAX];
};

/* Sent just before the fd-open or task-new record it belongs to, from the
 * same tid and with the same h.ts. */
struct lt_py_stack_event {
	struct lt_header h;
	__u32 depth;  /* frames sent, innermost first */
	__u32 status; /* LT_PY_* */
	__u64 hash;   /* of the frames and status: part of the record's site (struct lt_stack) */
	struct lt_py_frame frames[LT_PY_FRAMES_MAX]; /* last: cut after depth */
};

#endif
