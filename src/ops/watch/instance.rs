//! The watched program's instances. Each runs under a guard of its own
//! (this executable again, `helpers::guard`): the program's parent and the
//! subreaper of all it starts. Stopping an instance stops every process the
//! program started, also one that left its process group or session
//! (SIGTERM, a grace period, SIGKILL); and should the watcher die, even by
//! SIGKILL, the guard kills them all.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::helpers::guard::{self, Report};
use crate::process;

/// One running instance of the program.
#[derive(Debug)]
pub struct Instance {
    /// The program's pid, which is also its process group's id.
    pub pid: u32,
    pub started: Instant,
    guard: Child,
    /// Orders to the guard; closed without one, it kills everything.
    orders: Option<std::io::PipeWriter>,
}

/// Starts `command` under its guard, in a new process group, with the
/// terminal's stdin, stdout and stderr; `on_exit` is called from another
/// thread with its exit status.
pub fn start(
    command: Command,
    on_exit: impl FnOnce(u32, std::io::Result<ExitStatus>) + Send + 'static,
) -> std::io::Result<Instance> {
    let (orders_in, orders) = std::io::pipe()?;
    let (reports, reports_out) = std::io::pipe()?;
    let (control, report) = (orders_in.as_raw_fd(), reports_out.as_raw_fd());
    let mut guard = guard::command(&command, control, report).map_err(std::io::Error::other)?;
    // A group of its own: the terminal's Ctrl-C is for the program and
    // the watcher, and the guard stays to clean up after them.
    guard.process_group(0);
    process::pass_fds(&mut guard, &[control, report]);
    let child = guard.spawn()?;
    // The guard's ends: it alone holds them now, so it sees the watcher go.
    drop((orders_in, reports_out));
    let mut instance = Instance {
        pid: 0,
        started: Instant::now(),
        guard: child,
        orders: Some(orders),
    };
    let mut reports = BufReader::new(reports);
    match next_report(&mut reports) {
        Some(Report::Started(pid)) => instance.pid = pid,
        Some(Report::Failed(why)) => return Err(std::io::Error::other(why)),
        _ => {
            return Err(std::io::Error::other("its guard ended before starting it"));
        }
    }
    let pid = instance.pid;
    std::thread::Builder::new()
        .name(format!("wait-{pid}"))
        .spawn(move || {
            let status = loop {
                match next_report(&mut reports) {
                    Some(Report::Exited(raw)) => break Ok(ExitStatus::from_raw(raw)),
                    Some(_) => {}
                    None => break Err(std::io::Error::other("its guard ended first")),
                }
            };
            on_exit(pid, status);
        })?;
    Ok(instance)
}

/// The guard's next report; `None` once it has ended.
fn next_report(reports: &mut impl BufRead) -> Option<Report> {
    let mut line = String::new();
    loop {
        line.clear();
        if reports.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(report) = Report::parse(&line) {
            return Some(report);
        }
    }
}

impl Instance {
    /// Stops the program and every process it started: SIGTERM, then
    /// SIGKILL to whatever is left after `grace`. Returns once none is
    /// left (or a second after SIGKILL, should one not die even of it, as
    /// in uninterruptible sleep).
    pub fn stop(mut self, grace: Duration) {
        if let Some(orders) = &mut self.orders {
            let _ = orders.write_all(guard::stop_order(grace).as_bytes());
        }
        // Dropped: the guard does as told, and ends.
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Without an order, the closed pipe makes the guard kill them all.
        self.orders.take();
        let _ = self.guard.wait();
    }
}
