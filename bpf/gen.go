// Package bpf holds leaktrace's kernel programs and their generated Go
// bindings. The bindings and objects are committed so that `go build` needs
// no clang; `make generate` rebuilds them and CI fails when they are stale.
//
// vmlinux.h was produced on a 6.18 kernel with
//
//	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h
//
// CO-RE relocations make the object portable to other BTF kernels.
package bpf

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target amd64 -type lt_header -type lt_fd_event -type lt_task_event -type lt_exec_event -type lt_mmap_event -type lt_map_event -type lt_stack -type lt_sock -type lt_event_type -type lt_counter -type lt_py_proc -type lt_py_frame -type lt_py_stack_event -type lt_py_code_event -type lt_sys -type lt_sys_class -type lt_sys_flag -type lt_proc_pc -type lt_file_pc -type lt_file_id_event -type lt_rule -type lt_rule_kind Leaktrace leaktrace.bpf.c -- -I.
