//! This process's CPU time, memory, open files and start time, read from
//! `/proc` (Linux); `None` where it cannot be read.

/// A reading of the process's resources.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time since start.
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    /// Unix time the process started.
    pub start_time_seconds: Option<f64>,
}

/// Reads the process's figures now.
pub fn read() -> ProcessStats {
    // SAFETY: sysconf and getrlimit only read process-wide values into the
    // locals given.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let max_fds = (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0)
        .then_some(limit.rlim_cur);
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // Fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let per_tick = if ticks > 0 { 1.0 / ticks as f64 } else { 0.01 };
    let cpu_seconds = match (field(14), field(15)) {
        (Some(u), Some(s)) => Some((u + s) as f64 * per_tick),
        _ => None,
    };
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    let start_time_seconds = match (boot, field(22)) {
        (Some(boot), Some(started)) => Some(boot as f64 + started as f64 * per_tick),
        _ => None,
    };
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    ProcessStats {
        cpu_seconds,
        resident_bytes: field(24).map(|pages| pages * page.max(0) as u64),
        virtual_bytes: field(23),
        open_fds,
        max_fds,
        start_time_seconds,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_figures() {
        let p = super::read();
        assert!(p.resident_bytes.unwrap() > 1_000_000);
        assert!(p.open_fds.unwrap() >= 3);
        let started = p.start_time_seconds.unwrap();
        let now = chrono::Utc::now().timestamp() as f64;
        assert!(started <= now + 1.0 && started > now - 86_400.0 * 365.0);
    }
}
