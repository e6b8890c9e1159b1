#!/usr/bin/env python3
"""Per-request costs of `moat serve` with the echo backend under wrk load: what the hop between
the I/O thread and the backend's worker costs, in counts that a shared, noisy machine does not
blur as much as req/s (context switches, CPU time and syscalls per request, per thread).

    python3 bench/gateway/per_request.py --build build-rel -c 16 -c 256 --stream --syscalls
    python3 bench/gateway/per_request.py --build build-rel -c 16 --plugin /tmp/old/libmoat_echo.so
    python3 bench/gateway/per_request.py --build build-rel -c 16 --callgrind

For every run it prints req/s and, per moat thread (by tid: the main thread is the I/O thread
with server.threads 1), voluntary and involuntary context switches per request and user+system
CPU microseconds per request, read from /proc/<pid>/task/*/{status,stat} before and after the
load. --syscalls adds syscalls per request per thread, counted with perf's syscall
tracepoints (exact, and cheap enough not to change the picture); --strace the same by strace
-c -f (which slows moat down a lot: read it as counts, never as speed); --callgrind replaces
all this with user-space instructions per request (repeatable on a busy machine, but valgrind
serializes the threads, so it prices the code path, not the hand-offs). --plugin loads another
echo plugin into the same moat, to compare two builds of the plugin back to back.
On a shared machine, run A and B alternately several times: which core the worker wakes on
(the I/O thread's, or wrk's) changes every count here, run to run.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONTENT = "hello from the gateway benchmark, twelve words in all for every request"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def write_files(tmp, threads, plugin=None):
    # The same configuration as run.sh; --plugin names another build of the echo plugin.
    with open(os.path.join(HERE, "moat.yaml.in")) as f:
        config = f.read().replace("@THREADS@", str(threads))
    if plugin:
        config = config.replace("    backend: echo\n", f"    backend: echo\n    plugin: {plugin}\n")
    with open(os.path.join(tmp, "moat.yaml"), "w") as f:
        f.write(config)
    with open(os.path.join(tmp, "chat.req"), "w") as f:
        f.write('{"model":"echo","messages":[{"role":"user","content":"%s"}]}' % CONTENT)
    with open(os.path.join(tmp, "stream.req"), "w") as f:
        f.write('{"model":"echo","stream":true,"messages":[{"role":"user","content":"%s"}]}' % CONTENT)


def start_moat(build, tmp, wrapper=()):
    out = open(os.path.join(tmp, "moat.stdout"), "w+")
    err = open(os.path.join(tmp, "moat.stderr"), "w")
    cmd = list(wrapper) + [os.path.join(build, "bin", "moat"), "serve", "--config",
                           os.path.join(tmp, "moat.yaml"), "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(cmd, stdout=out, stderr=err)
    for _ in range(300):
        out.seek(0)
        m = re.search(r"^moat: listening on (\S+)", out.read(), re.M)
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            sys.exit(f"moat exited: see {tmp}/moat.stderr")
        time.sleep(0.1)
    sys.exit("moat did not get ready")


def moat_pid(proc):
    # Under strace the moat process is strace's child (valgrind runs it in its own process).
    if os.path.basename(os.readlink(f"/proc/{proc.pid}/exe")) != "strace":
        return proc.pid
    kids = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
    return int(kids[0])


def thread_counters(pid):
    """{tid: (name, voluntary cs, involuntary cs, cpu ticks)}"""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            status = open(f"/proc/{pid}/task/{tid}/status").read()
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        name = re.search(r"^Name:\s*(.*)$", status, re.M).group(1)
        vol = int(re.search(r"^voluntary_ctxt_switches:\s*(\d+)", status, re.M).group(1))
        inv = int(re.search(r"^nonvoluntary_ctxt_switches:\s*(\d+)", status, re.M).group(1))
        fields = stat[stat.rindex(")") + 2:].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        out[tid] = (name, vol, inv, ticks)
    return out


def run_wrk(url, body, c, seconds):
    env = dict(os.environ, BENCH_PATH="/v1/chat/completions", BENCH_BODY_FILE=body)
    res = subprocess.run(["wrk", "-t1", f"-c{c}", f"-d{seconds}s", "-s",
                          os.path.join(HERE, "post.lua"), url],
                         env=env, capture_output=True, text=True, check=True)
    total = int(re.search(r"(\d+) requests in", res.stdout).group(1))
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", res.stdout).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", res.stdout)
    return total, rps, int(errors.group(1)) if errors else 0


# raw_syscalls:sys_enter counts every syscall (printed as "all"), so one missing from the named
# list still shows in the total.
PERF_EVENTS = ["raw_syscalls:sys_enter"] + ["syscalls:sys_enter_" + n for n in
               ("futex", "epoll_wait", "epoll_ctl", "sched_yield", "sendmsg", "recvmsg", "write",
                "read", "writev", "sendto", "recvfrom", "timerfd_settime")]


def start_perf(pid, seconds):
    """Syscall tracepoint counts per thread over the measured run: exact, and far cheaper than
    strace (which serializes every call)."""
    return subprocess.Popen(["perf", "stat", "-x,", "--per-thread", "-p", str(pid), "-e",
                             ",".join(PERF_EVENTS), "--", "sleep", str(seconds)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def print_perf(text, total):
    per_event = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) < 4 or not parts[1].strip().isdigit():
            continue
        thread, count, event = parts[0], int(parts[1]), parts[3]
        if count == 0:
            continue
        name = "all" if event == "raw_syscalls:sys_enter" else event.replace("syscalls:sys_enter_", "")
        per_event.setdefault(name, []).append((thread, count))
    print("  syscalls per request (perf, per thread):")
    for event, rows in per_event.items():
        cells = "  ".join(f"{t.split('-')[-1]}:{n / total:.3f}" for t, n in sorted(rows))
        print(f"    {event:12s} {sum(n for _, n in rows) / total:.3f}   ({cells})")


def measure(build, tmp, c, body, seconds, syscalls=False):
    proc, addr = start_moat(build, tmp)
    try:
        url = f"http://{addr}"
        run_wrk(url, body, c, 1)  # warm-up
        before = thread_counters(proc.pid)
        perf = start_perf(proc.pid, seconds) if syscalls else None
        total, rps, errors = run_wrk(url, body, c, seconds)
        after = thread_counters(proc.pid)
        perf_out = perf.communicate()[1] if perf else ""
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    # Threads by name; unnamed ones ("moat": the main and I/O threads) one by one, by tid.
    rows = []
    for tid, (name, vol, inv, ticks) in after.items():
        b = before.get(tid, (name, 0, 0, 0))
        rows.append((name if name != "moat" else f"moat/{tid}", vol - b[1], inv - b[2], ticks - b[3]))
    groups = {}
    for name, vol, inv, ticks in rows:
        g = groups.setdefault(name, [0, 0, 0, 0])
        for i, v in enumerate((vol, inv, ticks, 1)):
            g[i] += v
    print(f"  {total} requests, {rps:,.0f} req/s, {errors} errors")
    cs_total = cpu_total = 0.0
    for name, (vol, inv, ticks, n) in sorted(groups.items()):
        if vol == inv == ticks == 0:
            continue
        cs_total += (vol + inv) / total
        cpu_total += ticks / CLK_TCK * 1e6 / total
        label = f"{name} x{n}" if n > 1 else name
        print(f"  {label:18s} cs/req vol {vol / total:.3f} invol {inv / total:.3f}   "
              f"cpu {ticks / CLK_TCK * 1e6 / total:.2f} us/req")
    print(f"  {'all threads':18s} cs/req {cs_total:.3f}             cpu {cpu_total:.2f} us/req")
    if perf_out:
        print_perf(perf_out, total)


def measure_strace(build, tmp, c, body, seconds):
    summary = os.path.join(tmp, "strace.txt")
    proc, addr = start_moat(build, tmp, ["strace", "-f", "-c", "-o", summary])
    try:
        # No warm-up: strace counts the whole life of the process, and start-up is a few hundred
        # calls against tens of thousands of requests.
        total, _, _ = run_wrk(f"http://{addr}", body, c, seconds)
    finally:
        os.kill(moat_pid(proc), signal.SIGTERM)
        proc.wait()
    total_all = total
    print(f"  strace: {total} requests, syscalls per request:")
    all_calls = 0
    for line in open(summary):
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            calls = int(parts[3])
            all_calls += calls
            if calls / total_all >= 0.01:
                print(f"    {parts[-1]:16s} {calls / total_all:.3f}")
    print(f"    {'all':16s} {all_calls / total_all:.3f}")


def measure_callgrind(build, tmp, c, body, seconds):
    """User-space instructions per request under callgrind: repeatable on a busy machine (the
    threads are serialized, so read it as the code path's cost, not as the hop's)."""
    out = os.path.join(tmp, "callgrind.out")
    proc, addr = start_moat(build, tmp, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
    try:
        url = f"http://{addr}"
        run_wrk(url, body, c, 2)  # warm-up, then zero the counters
        subprocess.run(["callgrind_control", "-z", str(moat_pid(proc))], check=True, capture_output=True)
        total, _, _ = run_wrk(url, body, c, seconds)
        subprocess.run(["callgrind_control", "-d", str(moat_pid(proc))], check=True, capture_output=True)
    finally:
        os.kill(moat_pid(proc), signal.SIGTERM)
        proc.wait()
    instructions = 0
    for name in os.listdir(tmp):
        if name.startswith("callgrind.out") and name != "callgrind.out":
            for line in open(os.path.join(tmp, name)):
                if line.startswith("totals:") or line.startswith("summary:"):
                    instructions = max(instructions, int(line.split()[1]))
            os.remove(os.path.join(tmp, name))
    print(f"  callgrind: {total} requests, {instructions / max(total, 1):,.0f} instructions per request")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("-c", type=int, action="append", help="concurrency (repeatable; default 16 and 256)")
    ap.add_argument("-d", type=int, default=5, help="seconds per run")
    ap.add_argument("--threads", type=int, default=1, help="server.threads")
    ap.add_argument("--plugin", help="the echo plugin to load (default: the build's); to compare builds")
    ap.add_argument("--stream", action="store_true", help="also the streamed request")
    ap.add_argument("--syscalls", action="store_true", help="syscalls per request per thread (perf stat)")
    ap.add_argument("--callgrind", action="store_true", help="only instructions per request (valgrind)")
    ap.add_argument("--strace", action="store_true", help="also syscalls per request (strace -c -f)")
    args = ap.parse_args()
    build = os.path.join(ROOT, args.build) if not os.path.isabs(args.build) else args.build
    with tempfile.TemporaryDirectory(prefix="moat-per-request.") as tmp:
        write_files(tmp, args.threads, os.path.abspath(args.plugin) if args.plugin else None)
        modes = [("chat", "chat.req")] + ([("stream", "stream.req")] if args.stream else [])
        print(f"load average {open('/proc/loadavg').read().split()[0:3]}")
        for c in args.c or [16, 256]:
            for mode, body in modes:
                print(f"{mode} c={c}")
                if args.callgrind:
                    measure_callgrind(build, tmp, c, os.path.join(tmp, body), args.d)
                    continue
                measure(build, tmp, c, os.path.join(tmp, body), args.d, args.syscalls)
                if args.strace:
                    measure_strace(build, tmp, c, os.path.join(tmp, body), args.d)


if __name__ == "__main__":
    main()
