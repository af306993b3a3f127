"""Writes bench/results/<date>-files-transfer.md for bench/files_transfer (see its docstring)."""
import statistics, sys

MiB, GiB = 1 << 20, 1 << 30


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None and not r.get("error")]
    return statistics.median(vals) if vals else None


def f(v, spec):
    return "-" if v is None else format(v, spec)


def write_report(out, args, info, big, bursts, pipes):
    size = big["size"] if big else args.size_mib * MiB
    gib = size / GiB
    L = []
    L.append(f"# keel files against socat and nc ({info['date']})\n")
    L.append(f"`{info['command']}`, keel {info['keel_commit']} ({info['keel']}), {info['socat']}, "
             f"{info['nc']}.\n")
    m = info["machine"]
    L.append(f"Machine: {m['nproc']} vCPUs ({m['model']}), {m['mem']}, Linux {m['kernel']}, "
             f"{m['os']}. Shared with other engineers' builds and tests. Servers (`keel files`, "
             "the listening socat or nc) are pinned to CPU 0 (`taskset -c 0`), clients to CPU 1 "
             "(`taskset -c 1`): with two vCPUs there is no third core, so each side has exactly "
             "one, the kernel's loopback work (softirq: a sender delivers into the receiver's "
             "socket) lands on whichever side is sending, and keel's hash thread shares CPU 0 "
             "with its event loop.\n")
    L.append(f"Files: in `{info['dir']}`, a {info['fs']} (`/tmp` here is {info['tmp_fs']}"
             + (", disk-backed, so not used" if info["tmp_fs"] != "tmpfs" else "")
             + "): every file is in RAM, so the page cache is always warm and no disk is "
             "involved (keel's fsyncs cost nothing there). Every copy was compared with its "
             "source byte for byte (`cmp`) and then deleted.\n")
    q = info["quiet"]
    L.append(f"Load: waited {q['waited_s'] / 60:.1f} min (at most {args.wait_load} min) for the "
             f"1-minute load average to fall below {args.max_load}: "
             + (f"it was {q['load']:.2f} when the run started.\n" if q["quiet"] else
                f"it never did ({q['load']:.2f} at the start); the run went ahead anyway.\n"))
    for part, w in info["load"].items():
        L.append(f"- {part}: {w['wall_s']:.0f} s; 1-minute load {w['load_min']:.2f} to "
                 f"{w['load_max']:.2f} (median {w['load_median']:.2f}, this benchmark's own "
                 f"processes included); the CPUs were {w['busy_pct']:.0f}% busy, "
                 f"{w['own_pct']:.0f}% by this benchmark and {w['others_pct']:.0f}% by other "
                 f"processes (both as % of all {m['nproc']} CPUs), steal {w['steal_pct']:.1f}%.")
    L.append("")
    if big:
        rows = big["rows"]
        L.append(f"## One {size // MiB} MiB file over loopback\n")
        L.append(f"Random bytes, SHA-256 `{big['sha256']}`; {args.rounds} rounds after one "
                 "untimed `keel get`, medians. MiB/s is the file's size over the wall time. "
                 "CPU s/GiB: utime + stime per GiB moved; keel's server from /proc/PID/stat "
                 "(10 ms ticks), the rest from wait4. Server / client busy %: that CPU time over "
                 "the wall time, as % of the one core each side has (about 100: that side was "
                 "the limit).\n")
        L.append("| tool | direction | wall s | MiB/s | keel --json s | server CPU s/GiB | "
                 "client CPU s/GiB | server / client busy % | rounds ok |\n"
                 "|---|---|---|---|---|---|---|---|---|")
        order = [("keel", "get (server hashes)"), ("keel", "get (hash cached)"), ("keel", "put"),
                 ] + [(tool, op) for tool in pipes for op in ("get", "put")]
        for tool, op in order:
            sel = [r for r in rows if r["tool"] == tool and r["op"] == op]
            ok = [r for r in sel if not r.get("error")]
            wall = med(sel, "wall_s")
            sc, cc = med(sel, "server_cpu_s"), med(sel, "client_cpu_s")
            L.append(f"| {tool} | {op} | {f(wall, '.3f')} | "
                     f"{f(size / MiB / wall if wall else None, ',.0f')} | "
                     f"{f(med(sel, 'json_s'), '.3f')} | {f(sc / gib if sc is not None else None, '.2f')} | "
                     f"{f(cc / gib if cc is not None else None, '.2f')} | "
                     f"{f(100 * sc / wall if sc is not None and wall else None, '.0f')} / "
                     f"{f(100 * cc / wall if cc is not None and wall else None, '.0f')} | "
                     f"{len(ok)}/{len(sel)} |")
        L.append("")
        cold = med([r for r in rows if r["op"] == "get (server hashes)"], "json_s")
        warm = med([r for r in rows if r["op"] == "get (hash cached)"], "json_s")
        hc = [r for r in rows if r["op"] == "HASH (cold)"]
        hw = [r for r in rows if r["op"] == "HASH (cached)"]
        hcs, hws, hcpu = med(hc, "wall_s"), med(hw, "wall_s"), med(hc, "server_cpu_s")
        L.append("keel's time, split (medians). `keel get`'s --json seconds run from the DATA "
                 "reply to the verified, renamed file: the data, the client's own SHA-256 (as "
                 "the bytes arrive), then a HASH request, then fsync and rename. The server "
                 "answers the HASH from its cache, or else when its hash thread has read and "
                 "hashed the whole file (a GET of a whole file starts that pass alongside the "
                 "transfer), so the difference between the two gets is what the verification "
                 "adds to a first fetch; the bare HASH is that pass on its own.\n")
        L.append("| step | seconds |\n|---|---|")
        L.append(f"| get, server hashes (data + verification) | {f(cold, '.3f')} |")
        L.append(f"| get, hash cached (data; verification ~0) | {f(warm, '.3f')} |")
        # Within each round (the two gets run back to back): this VM switches between two
        # speeds on its own, and a difference of medians from different rounds mixes them.
        diffs = []
        for rnd in sorted({r["round"] for r in rows}):
            pair = {r["op"]: r for r in rows if r["round"] == rnd and r["tool"] == "keel"
                    and not r.get("error")}
            a, b = pair.get("get (server hashes)"), pair.get("get (hash cached)")
            if a and b and a.get("json_s") is not None and b.get("json_s") is not None:
                diffs.append(a["json_s"] - b["json_s"])
        L.append(f"| difference, within each round: what the verification adds (median; each "
                 f"round) | {f(statistics.median(diffs) if diffs else None, '.3f')} ("
                 + ", ".join(f"{d:+.3f}" for d in diffs) + ") |")
        L.append(f"| a bare HASH of the whole file, cold (this script's own request) | "
                 f"{f(hcs, '.3f')} ({f(size / MiB / hcs if hcs else None, ',.0f')} MiB/s; "
                 f"server CPU {f(hcpu, '.2f')} s) |")
        L.append(f"| the same HASH, cached | {f(hws * 1000 if hws is not None else None, '.2f')} ms |")
        L.append("")
        L.append("Every round:\n")
        L.append("| round | tool | direction | wall s | keel --json s | server CPU s | "
                 "client CPU s | error |\n|---|---|---|---|---|---|---|---|")
        for r in rows:
            L.append(f"| {r['round']} | {r['tool']} | {r['op']} | {r['wall_s']:.3f} | "
                     f"{f(r.get('json_s'), '.3f')} | {f(r.get('server_cpu_s'), '.2f')} | "
                     f"{f(r.get('client_cpu_s'), '.2f')} | {r.get('error', '')} |")
        L.append("")
    if bursts:
        rows = bursts["rows"]
        n = args.clients
        L.append(f"## {n} clients at once, {bursts['size'] // MiB} MiB each\n")
        L.append(f"`keel files --threads T` on CPU 0, stopped (SIGSTOP) while {n} `keel get "
                 f"--json` start on CPU 1, connect and send their GET, then released (SIGCONT). "
                 "`same`: all fetch one file; `own`: each its own file. `cold`: a fresh server "
                 "(it hashes each file once for the verifications); `warm`: the next burst on "
                 f"the same server (hashes cached). {args.burst_rounds} rounds, medians. "
                 "GiB/s: all bytes over SIGCONT to the last client's exit. Per-client seconds: "
                 "each client's --json seconds (DATA reply to verified file), min / median / "
                 "max; `last exit` is when the last client exited after SIGCONT (it includes "
                 "the wait to be accepted and served). keel server CPU: utime + stime from "
                 "/proc/PID/stat over SIGCONT to the last exit, as % of that span and per GiB; "
                 "CPU 0 / CPU 1 busy: each CPU's busy share of the same span from /proc/stat "
                 "(whoever ran there; CPU 1 is all clients). Client CPU s/GiB: the clients' "
                 "whole lives from wait4, so it includes each process's start-up (exec, dynamic "
                 "linking, connect), done before SIGCONT.\n")
        L.append("| threads | files | hash cache | GiB/s | last exit s | per-client s min | "
                 "median | max | max/min | keel server CPU % | CPU 0 / CPU 1 busy % | "
                 "server CPU s/GiB | client CPU s/GiB | errors |\n"
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for threads in args.burst_threads:
            for files in ("same", "own"):
                for cache in ("cold", "warm"):
                    sel = [r for r in rows if r["threads"] == threads and r["files"] == files
                           and r["cache"] == cache]
                    if not sel:
                        continue
                    ok = [r for r in sel if r["client_s"]]
                    mins = [r["client_s"][0] for r in ok]
                    meds = [statistics.median(r["client_s"]) for r in ok]
                    maxs = [r["client_s"][-1] for r in ok]
                    ratio = [r["client_s"][-1] / r["client_s"][0] for r in ok if r["client_s"][0]]
                    md = lambda v: statistics.median(v) if v else None
                    gb = sum(r["bytes"] for r in sel) / len(sel) / GiB
                    L.append(
                        f"| {threads} | {files} | {cache} | {f(md([r['gib_per_s'] for r in sel]), '.2f')} | "
                        f"{f(md([r['wall_s'] for r in sel]), '.2f')} | {f(md(mins), '.2f')} | "
                        f"{f(md(meds), '.2f')} | {f(md(maxs), '.2f')} | {f(md(ratio), '.1f')} | "
                        f"{f(md([100 * r['server_cpu_s'] / r['wall_s'] for r in sel]), '.0f')} | "
                        f"{f(md([r['cpu_busy_pct'][0] for r in sel]), '.0f')} / "
                        f"{f(md([r['cpu_busy_pct'][1] for r in sel]), '.0f')} | "
                        f"{f(md([r['server_cpu_s'] / gb for r in sel]), '.2f')} | "
                        f"{f(md([r['client_cpu_s'] / gb for r in sel]), '.2f')} | "
                        f"{sum(len(r['errors']) for r in sel)} |")
        L.append("")
        errs = [e for r in rows for e in r["errors"]]
        if errs:
            L.append("Errors (first 10):\n")
            L.extend(f"- {e}" for e in errs[:10])
            L.append("")
    with open(out, "w") as fh:
        fh.write("\n".join(L))
    log(f"wrote {out}")
