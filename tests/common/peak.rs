//! What a finished child used, shared by the tests and the benches: its exit code, its CPU
//! time and its own peak resident memory.

use std::process::Child;
use std::time::Duration;

pub struct Used {
    pub code: i32,
    pub cpu: Duration,
    pub peak_mb: f64,
}

/// Waits for `child`, reading its peak memory as it runs. `VmHWM` belongs to the child's
/// address space after exec (`ru_maxrss` of a fork would also count the pages it shared with
/// this process, which may host the sandbox); `wait4` gives this child's own CPU time.
pub fn wait_with_peak(child: Child) -> Used {
    let pid = child.id() as libc::pid_t;
    let status_file = format!("/proc/{pid}/status");
    let mut peak_kb = 0f64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            if let Some(kb) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: plain syscall on our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
            std::mem::forget(child);
            return Used {
                code: if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    -1
                },
                cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
                peak_mb: peak_kb / 1024.0,
            };
        }
        assert!(r == 0, "wait4 failed");
        // Often enough that the end of a run is seen within a couple of milliseconds.
        std::thread::sleep(Duration::from_millis(2));
    }
}
