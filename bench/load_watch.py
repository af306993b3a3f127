"""The machine's load around a benchmark on a shared machine: wait for it to fall, then split
the CPUs' busy time over a part into the benchmark's own and everyone else's; and which file
system a path is on (bench/files_transfer). Only the standard library."""
import os, resource, statistics, sys, time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def fs_type(path):
    """The file system type of the mount holding path (the longest mount point that prefixes it)."""
    path = os.path.realpath(path)
    best, kind = "", "unknown"
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            mnt = fields[1].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, fields[2]
    return kind


def cpu_stat():
    """(busy, steal) ticks of all CPUs from /proc/stat: busy = user+nice+system+irq+softirq."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6], v[7]


def busy_per_cpu():
    """Busy ticks (as cpu_stat) of each CPU: [cpu0, cpu1, ...]."""
    out = []
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                out.append(v[0] + v[1] + v[2] + v[5] + v[6])
    return out


def own_cpu_s():
    """CPU seconds of this script and of every child it has reaped."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


class LoadWatch:
    """The machine's CPU use over one part, split into this benchmark's and everyone else's, and
    the 1-minute load averages seen at each measurement. Start and stop with no keel server alive
    (a live child's CPU is not in RUSAGE_CHILDREN until it is reaped)."""

    def __init__(self):
        self.t0, (self.busy0, self.steal0), self.own0 = time.monotonic(), cpu_stat(), own_cpu_s()
        self.loads = [os.getloadavg()[0]]

    def sample(self):
        self.loads.append(os.getloadavg()[0])

    def stop(self):
        wall = time.monotonic() - self.t0
        busy1, steal1 = cpu_stat()
        cap = wall * os.cpu_count()
        busy = (busy1 - self.busy0) / CLK_TCK
        own = own_cpu_s() - self.own0
        self.sample()
        return {"wall_s": wall, "busy_pct": 100 * busy / cap,
                "own_pct": 100 * own / cap, "others_pct": max(0.0, 100 * (busy - own) / cap),
                "steal_pct": 100 * (steal1 - self.steal0) / CLK_TCK / cap,
                "load_min": min(self.loads), "load_max": max(self.loads),
                "load_median": statistics.median(self.loads)}


def wait_for_quiet(max_minutes, threshold, poll_s=30):
    """Waits until the 1-minute load average is below threshold, at most max_minutes."""
    t0 = time.monotonic()
    while True:
        load = os.getloadavg()[0]
        waited = time.monotonic() - t0
        if load < threshold:
            return {"waited_s": waited, "load": load, "quiet": True}
        if waited + poll_s > max_minutes * 60:
            return {"waited_s": waited, "load": load, "quiet": False}
        log(f"load average {load:.2f} >= {threshold}: waiting ({waited / 60:.1f} of "
            f"{max_minutes} min)")
        time.sleep(poll_s)
