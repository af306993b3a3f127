"""Renders a bench/compare run: the machine description, the Markdown report and the chart.

Used by bench/compare (results are dicts built there); only the standard library, gnuplot for
the chart when it is installed.
"""
import os, platform, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def read_kib(path, key):
    """A 'Key:  N kB' line of /proc/PID/status or /proc/meminfo, in KiB (0 if absent)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = read_kib("/proc/meminfo", "MemTotal")
    commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    return {"nproc": os.cpu_count(), "model": model, "kernel": platform.release(),
            "os": distro(), "mem": f"{mem // 1024} MiB" if mem else "unknown", "commit": commit}


def distro():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def bound(cell):
    """Which side ran out of CPU in the measured window (>= 90% of its core), if either."""
    server, gen = cell["server_cpu_pct"] >= 90, cell["gen_cpu_pct"] >= 90
    if server:
        return "both" if gen else "server"
    return "**gen**" if gen else "neither"


def short_note(cell, conns):
    """Marks a cell whose generator failed or did not get every connection up."""
    note = ""
    if cell.get("connected", conns) < conns:
        note += f" ({cell['connected']}/{conns} up)"
    if cell.get("error"):
        note += " !"
    return note


def us_per_msg(cell):
    """Server CPU per message; with --repeat, the median run's and the range over the runs."""
    v = fmt(cell["server_cpu_us_per_msg"], ".2f")
    lo, hi = cell.get("us_per_msg_range", (None, None))
    return f"{v} ({lo:.2f}-{hi:.2f})" if cell.get("runs", 1) > 1 else v


def vs_epoll(results, cell, size, conns):
    """The cell's server CPU per message over the minimal epoll loop's in the same cell."""
    e = results.get(("epoll", size, conns))
    mine = cell.get("server_cpu_us_per_msg")
    theirs = e.get("server_cpu_us_per_msg") if e else None
    return f"{mine / theirs:.2f}" if mine and theirs else "-"


def size_label(size):
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def write_chart(results, servers, conns_list, sizes, png):
    """One PNG, one panel per message size: msgs/s per server by connection count (log x)."""
    if not shutil.which("gnuplot"):
        log("compare: gnuplot not found (Debian: gnuplot-nox): no chart")
        return False
    tmp = tempfile.mkdtemp(prefix="keel-compare-")
    plots = []
    for size in sizes:
        data = os.path.join(tmp, f"{size}.dat")
        with open(data, "w") as f:
            for conns in conns_list:
                row = [str(conns)]
                for s in servers:
                    c = results.get((s, size, conns))
                    row.append(str(c["msgs_per_s"]) if c and "msgs_per_s" in c else "NaN")
                f.write(" ".join(row) + "\n")
        lines = ", ".join(
            f"'{data}' using 1:{i + 2} with linespoints lw 2 pt {i + 5} title '{s}'"
            for i, s in enumerate(servers))
        plots.append(f"set title 'echo ping-pong, {size_label(size)} messages'\nplot {lines}\n")
    lo, hi = min(conns_list) / 1.5, max(conns_list) * 1.5
    script = (
        f"set terminal pngcairo size {100 + 650 * len(sizes)},560 font 'sans,10'\n"
        f"set output '{png}'\nset multiplot layout 1,{len(sizes)}\nset logscale x\nset grid\n"
        "set key top left\nset xlabel 'connections'\nset ylabel 'messages/s'\n"
        f"set format y '%.0s%c'\nset yrange [0:*]\nset xrange [{lo}:{hi}]\n"
        + "".join(plots) + "unset multiplot\n")
    p = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    shutil.rmtree(tmp, ignore_errors=True)
    if p.returncode != 0:
        log(f"compare: gnuplot failed: {p.stderr.strip()}")
        return False
    return True


def write_report(args, m, results, idle, servers, conns_list, sizes, path, png_name, elapsed):
    L = [f"# keel echo vs peer echo servers, {args.date}{' (quick)' if args.quick else ''}", ""]
    L += ["## Machine", "",
          f"- CPUs: {m['nproc']} x {m['model']}",
          f"- Memory: {m['mem']}; kernel {m['kernel']}; {m['os']}",
          f"- keel commit: `{m['commit']}`; build: `{os.path.relpath(args.build, ROOT)}`",
          f"- Server pinned to CPU 0, load generator to CPU 1"
          f"{'' if args.pin else ' (NOT pinned: taskset missing or --no-pin)'}", ""]
    L += ["## Command", "", "```", " ".join(["bench/compare"] + args.argv), "```", "",
          f"Per cell: `keel bench pingpong 127.0.0.1:PORT --conns N --size BYTES --duration "
          f"{args.duration} --warmup {args.warmup} --threads 1 --json`, one closed-loop message "
          f"in flight per connection. Each cell starts a fresh server (peak RSS is per cell). "
          + (f"Every cell ran {args.repeat} times (each round runs every server once); a row is "
             f"the run with the median server CPU per message, the range over all runs in "
             f"brackets. " if args.repeat > 1 else "")
          + f"Whole run: {elapsed:.0f} s.", ""]
    L += ["Columns: **msgs/s** completed round trips per second; **MiB/s** payload echoed; "
          "**p50/p99** round-trip latency in µs; **srv µs/msg** server CPU (user+sys, "
          "/proc/PID/stat) over the measured window divided by messages; **srv CPU** and "
          "**gen CPU** each process's CPU over the same window, % of one core; **bound** which "
          "side was saturated (>= 90% of its core: `server` or `both` is a valid server "
          "measurement, `gen` means the generator limited the cell, `neither` means "
          "latency-bound); **peak RSS** "
          "the server's VmHWM for the cell; **err** connect/reset/timeout/closed errors; **vs "
          "epoll** srv µs/msg over the minimal epoll loop's in the same cell. "
          "See bench/README.md.", ""]
    if png_name:
        L += [f"![msgs/s by connections]({png_name})", ""]
    for size in sizes:
        L += [f"## {size_label(size)} messages", "",
              "| server | conns | msgs/s | MiB/s | p50 µs | p99 µs | srv µs/msg | vs epoll | "
              "srv CPU | gen CPU | bound | peak RSS KiB | err |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
        for conns in conns_list:
            for s in servers:
                c = results.get((s, size, conns))
                if c is None:
                    continue
                if "msgs_per_s" not in c:
                    L.append(f"| {s} | {conns} | failed: {c.get('error', '?')} |||||||||||")
                    continue
                L.append(
                    f"| {s} | {conns} | {c['msgs_per_s']:,.0f} | {c['mib_per_s']:.1f} | "
                    f"{fmt(c['p50_us'], '.0f')} | {fmt(c['p99_us'], '.0f')} | "
                    f"{us_per_msg(c)} | {vs_epoll(results, c, size, conns)} | "
                    f"{c['server_cpu_pct']:.0f}% | "
                    f"{c['gen_cpu_pct']:.0f}% | {bound(c)} | {c['server_hwm_kib']:,} | "
                    f"{c['errors']}{short_note(c, conns)} |")
        L.append("")
    if idle:
        L += [f"## Idle connections ({args.idle_conns} held {args.idle_hold} s)", "",
              f"`keel bench idle 127.0.0.1:PORT --conns {args.idle_conns} --hold "
              f"{args.idle_hold} --server-pid PID --json` against a fresh server. **RSS at start** "
              "is the server's VmRSS just after it printed its port; **before/after/delta** come "
              "from the JSON (VmRSS before opening and while holding the connections); **B/conn** "
              "is the delta divided by the connections still alive.", "",
              "| server | opened | alive | failed | RSS at start KiB | before KiB | after KiB | "
              "delta KiB | B/conn | peak RSS KiB |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in servers:
            r = idle.get(s)
            if r is None:
                continue
            if "server_rss_delta_kib" not in r:
                L.append(f"| {s} | failed: {r.get('error', '?')} |||||||||")
                continue
            alive = r.get("alive", 0)
            per = r["server_rss_delta_kib"] * 1024 / alive if alive else None
            L.append(f"| {s} | {r.get('opened')} | {alive} | {r.get('failed')} | "
                     f"{r['rss_start_kib']:,} | {r['server_rss_before_kib']:,} | "
                     f"{r['server_rss_after_kib']:,} | {r['server_rss_delta_kib']:,} | "
                     f"{fmt(per, '.0f')} | {r['server_hwm_kib']:,} |")
        L.append("")
    errors = [f"- {s} {size_label(z)} x {n}: {c['error']}" for (s, z, n), c in results.items()
              if c.get("error")]
    errors += [f"- idle {s}: {r['error']}" for s, r in idle.items() if r.get("error")]
    if errors:
        L += ["## Errors", ""] + errors + [""]
    with open(path, "w") as f:
        f.write("\n".join(L))
