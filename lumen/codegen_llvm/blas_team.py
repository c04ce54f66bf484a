"""OpenBLAS's parallel work run on lumen's OpenMP team: one pool of threads in the process.

OpenBLAS (0.3.28 and later) hands the jobs of a parallel call to a function of the caller's
where one is set (``openblas_set_threads_callback_function``; the pointer is the library's
global ``openblas_threads_callback_``). `symbols` sets it to `NAME` in the OpenBLAS lumen calls
(NumPy's own) when loops first may run on more than one thread, and clears it in a forked
child. Then the products of a compiled function and NumPy's around it run on the same threads
as lumen's loops: OpenBLAS's
own threads, which keep spinning after each call, no longer take the core that a loop after a
product needs, and lumen's team may spin between regions in turn (`symbols.GOMP_SPINCOUNT`)
without taking it from them. Measured on 2 cores: the MLP step 784-1000-1000-1000-10 at batch 1
ran 0.77-1.1 ms with OpenBLAS's threads, 0.41-0.50 ms on the team, spinning; NumPy's
``b @ v`` (1000 x 1000 float32) before each call of a compiled ``tanh(x @ a)``, 131 us a pair
with OpenBLAS's threads and a sleeping team, 703 us with a spinning one, 77 us on one team.

OpenBLAS's jobs of one call wait for each other (its threads share packed panels), so they must
all run at once: job i on thread i of a team asked for one thread per job, and where the team
is smaller (inside another parallel region, where a nested team has one thread, or under
OMP_THREAD_LIMIT or OMP_DYNAMIC), the jobs beyond it on threads of their own.
"""
from __future__ import annotations

NAME = "lumen_blas_team"
#: The fields of what every job reads (``%call``) and of one job on a thread of its own
#: (``%job``): (name, type).
CALL = (("dojob", "%dojob*"), ("data", "i8*"), ("size", "i64"), ("extra", "i32"), ("jobs", "i32"))
JOB = (("dojob", "%dojob*"), ("data", "i8*"), ("index", "i32"), ("extra", "i32"))


def _fields(op, struct, pointer, fields, values=None) -> str:
    """IR lines that load each field of ``*pointer`` into ``%name`` or store ``values`` (by
    default ``%name``) into them."""
    lines = []
    for i, (name, ty) in enumerate(fields):
        slot = f"%{pointer[1:]}.{name}"
        lines.append(f"  {slot} = getelementptr {struct}, {struct}* {pointer}, i32 0, i32 {i}")
        if op == "load":
            lines.append(f"  %{name} = load {ty}, {ty}* {slot}")
        else:
            value = values[i] if values else f"%{name}"
            lines.append(f"  store {ty} {value}, {ty}* {slot}")
    return "\n".join(lines)


def _loop_head(label, i, before, latch, after, body=None) -> str:
    """The head of a loop of ``%i`` over ``%start`` .. ``%n - 1`` (stepped at ``latch`` as
    ``%i.next``): on to ``body`` (default: the latch) or, when done, ``after``."""
    return (f"{label}:\n  %{i} = phi i64 [ %start, %{before} ], [ %{i}.next, %{latch} ]\n"
            f"  %{i}.more = icmp slt i64 %{i}, %n\n"
            f"  br i1 %{i}.more, label %{body or latch}, label %{after}")


def module_ir() -> str:
    """``void lumen_blas_team(i32 sync, dojob, i32 jobs, i64 job_size, i8* job_data, i32
    extra)`` (OpenBLAS's callback type; ``sync`` is always 1: return when all are done): job i
    runs as ``dojob(i, job_data + i * job_size, extra)``."""
    return f"""
%dojob = type void (i32, i8*, i32)
%call = type {{ {", ".join(ty for _, ty in CALL)} }}
%job = type {{ {", ".join(ty for _, ty in JOB)} }}

declare void @lumen_GOMP_parallel(void (i8*)*, i8*, i32, i32)
declare i32 @lumen_omp_get_thread_num()
declare i32 @lumen_omp_get_num_threads()
declare i32 @pthread_create(i64*, i8*, i8* (i8*)*, i8*)
declare i32 @pthread_join(i64, i8**)

define internal void @team_region(i8* %captures) {{
entry:
  %args = bitcast i8* %captures to %call*
{_fields('load', '%call', '%args', CALL)}
  %t = call i32 @lumen_omp_get_thread_num()
  %threads = call i32 @lumen_omp_get_num_threads()
  %first = icmp eq i32 %t, 0
  %short = icmp slt i32 %threads, %jobs
  %helped = and i1 %first, %short
  br i1 %helped, label %own, label %mine
own:
  call void @own_threads(%dojob* %dojob, i32 %threads, i32 %jobs, i64 %size, i8* %data, i32 %extra)
  ret void
mine:
  %any = icmp slt i32 %t, %jobs
  br i1 %any, label %run, label %done
run:
  %wide = sext i32 %t to i64
  %offset = mul i64 %wide, %size
  %one = getelementptr i8, i8* %data, i64 %offset
  call void %dojob(i32 %t, i8* %one, i32 %extra)
  br label %done
done:
  ret void
}}

define internal i8* @own_thread(i8* %p) {{
entry:
  %job = bitcast i8* %p to %job*
{_fields('load', '%job', '%job', JOB)}
  call void %dojob(i32 %index, i8* %data, i32 %extra)
  ret i8* null
}}

; jobs from..jobs-1 on new threads, job 0 here, then wait for them (a thread that cannot be
; started runs its job here afterwards: only where the system has no thread left to give, and
; then jobs that wait for each other may not finish)
define internal void @own_threads(%dojob* %dojob, i32 %from, i32 %jobs, i64 %size, i8* %data, i32 %extra) {{
entry:
  %n = sext i32 %jobs to i64
  %start = sext i32 %from to i64
  %ids = alloca i64, i64 %n
  %started = alloca i1, i64 %n
  %each = alloca %job, i64 %n
  br label %start.head
{_loop_head("start.head", "i", "entry", "start.body", "first")}
start.body:
  %job = getelementptr %job, %job* %each, i64 %i
  %offset = mul i64 %i, %size
  %its = getelementptr i8, i8* %data, i64 %offset
  %index = trunc i64 %i to i32
{_fields('store', '%job', '%job', JOB, ('%dojob', '%its', '%index', '%extra'))}
  %id = getelementptr i64, i64* %ids, i64 %i
  %arg = bitcast %job* %job to i8*
  %failed = call i32 @pthread_create(i64* %id, i8* null, i8* (i8*)* @own_thread, i8* %arg)
  %ok = icmp eq i32 %failed, 0
  %flag = getelementptr i1, i1* %started, i64 %i
  store i1 %ok, i1* %flag
  %i.next = add i64 %i, 1
  br label %start.head
first:
  call void %dojob(i32 0, i8* %data, i32 %extra)
  br label %join.head
{_loop_head("join.head", "k", "first", "join.next", "done", "join.body")}
join.body:
  %kflag = getelementptr i1, i1* %started, i64 %k
  %kok = load i1, i1* %kflag
  br i1 %kok, label %join, label %here
join:
  %kid.p = getelementptr i64, i64* %ids, i64 %k
  %kid = load i64, i64* %kid.p
  %r = call i32 @pthread_join(i64 %kid, i8** null)
  br label %join.next
here:
  %kjob = getelementptr %job, %job* %each, i64 %k
  %kp = bitcast %job* %kjob to i8*
  %ignored = call i8* @own_thread(i8* %kp)
  br label %join.next
join.next:
  %k.next = add i64 %k, 1
  br label %join.head
done:
  ret void
}}

define void @{NAME}(i32 %sync, %dojob* %dojob, i32 %jobs, i64 %size, i8* %data, i32 %extra) {{
entry:
  %args = alloca %call
{_fields('store', '%call', '%args', CALL)}
  %captures = bitcast %call* %args to i8*
  call void @lumen_GOMP_parallel(void (i8*)* @team_region, i8* %captures, i32 %jobs, i32 0)
  ret void
}}
"""
