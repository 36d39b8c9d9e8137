//! After a reload, the program's windows asked to draw again, so a GUI
//! that paints only on input (egui, a reactive Bevy app) shows the new
//! code without the user moving the mouse. All of it is platform code,
//! kept here.
//!
//! X11 lets any client send an event to any window: each top-level window
//! whose `_NET_WM_PID` is the program's gets an `Expose` (its whole area,
//! no more to come), which toolkits answer by painting (winit turns it
//! into `RedrawRequested`). The X server is the one the program uses: the
//! `DISPLAY` (and `XAUTHORITY`) of its own environment. Wayland gives no
//! client a way to make another draw, so there nothing is done; nor where
//! the program has no X display, no window, or the server does not
//! answer in time. The request runs on a thread of its own and the
//! watcher waits for it a moment only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ConnectionExt, EXPOSE_EVENT, EventMask, ExposeEvent, Window,
};
use x11rb::reexports::x11rb_protocol::parse_display::parse_display;
use x11rb::reexports::x11rb_protocol::xauth::Family;
use x11rb::rust_connection::{DefaultStream, RustConnection};

use crate::shell::Shell;

/// How long the watcher waits for the X server before it goes on.
const PATIENCE: Duration = Duration::from_millis(500);

/// What asking for a redraw did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Redrawn {
    /// An `Expose` went to each of `windows` on X display `display`.
    Asked { display: String, windows: usize },
    /// The program has no X display to ask through (`wayland`: it has a
    /// Wayland one, and X11 none).
    NoDisplay { wayland: bool },
}

/// Asks the windows of process `pid` to draw again, and says what came
/// of it under `-v`. Nothing the program shows depends on it: any failure
/// is only said, and a server slower than [`PATIENCE`] is left to answer
/// on its own.
pub(super) fn after_reload(shell: &Shell, pid: u32) {
    let (tx, rx) = mpsc::channel();
    let asking = std::thread::Builder::new()
        .name("redraw".into())
        .spawn(move || {
            let _ = tx.send(redraw(pid));
        });
    if asking.is_err() {
        return;
    }
    let said = match rx.recv_timeout(PATIENCE) {
        Ok(Ok(Redrawn::Asked {
            display,
            windows: 0,
        })) => {
            format!("no X11 window of process {pid} on `{display}` to redraw")
        }
        Ok(Ok(Redrawn::Asked { display, windows })) => format!(
            "asked {} of process {pid} on X11 `{display}` to draw again",
            crate::shell::count(windows, "window", "windows")
        ),
        Ok(Ok(Redrawn::NoDisplay { wayland: true })) => format!(
            "process {pid} has only a Wayland display, where no other client can ask it to draw"
        ),
        Ok(Ok(Redrawn::NoDisplay { wayland: false })) => {
            format!("process {pid} has no X11 display: no window to redraw")
        }
        Ok(Err(e)) => format!("could not ask the windows of process {pid} to redraw: {e:#}"),
        Err(_) => format!(
            "the X server of process {pid} did not answer within {} ms: not waiting to redraw",
            PATIENCE.as_millis()
        ),
    };
    shell.verbose_status("Redraw", said);
}

/// Sends an `Expose` to every top-level window of process `pid` on its
/// X display.
fn redraw(pid: u32) -> Result<Redrawn> {
    let env = environment(pid)?;
    let Some(display) = env.get("DISPLAY").filter(|d| !d.is_empty()) else {
        return Ok(Redrawn::NoDisplay {
            wayland: env.contains_key("WAYLAND_DISPLAY"),
        });
    };
    let authority = env.get("XAUTHORITY").map(PathBuf::from).or_else(|| {
        env.get("HOME")
            .map(|h| PathBuf::from(h).join(".Xauthority"))
    });
    let conn = connect(display, authority)?;
    let windows = windows_of(&conn, pid)?;
    for &(window, width, height) in &windows {
        let expose = ExposeEvent {
            response_type: EXPOSE_EVENT,
            sequence: 0,
            window,
            x: 0,
            y: 0,
            width,
            height,
            count: 0,
        };
        conn.send_event(false, window, EventMask::EXPOSURE, expose)?;
    }
    // A round trip: every event is on its way before the connection ends.
    conn.get_input_focus()?.reply()?;
    Ok(Redrawn::Asked {
        display: display.clone(),
        windows: windows.len(),
    })
}

/// The top-level windows (children of a root, or of a window manager's
/// frame there) whose `_NET_WM_PID` is `pid`, with their size.
fn windows_of(conn: &RustConnection, pid: u32) -> Result<Vec<(Window, u16, u16)>> {
    // No client set it: no window says whose it is.
    let atom = conn.intern_atom(true, b"_NET_WM_PID")?.reply()?.atom;
    if atom == x11rb::NONE {
        return Ok(Vec::new());
    }
    let mut candidates = Vec::new();
    for screen in &conn.setup().roots {
        let top = conn.query_tree(screen.root)?.reply()?.children;
        let frames: Vec<_> = top
            .iter()
            .map(|&w| conn.query_tree(w))
            .collect::<Result<_, _>>()?;
        candidates.extend(&top);
        for frame in frames {
            // A window gone meanwhile has no children to look at.
            if let Ok(reply) = frame.reply() {
                candidates.extend(reply.children);
            }
        }
    }
    let pids: Vec<_> = candidates
        .iter()
        .map(|&w| conn.get_property(false, w, atom, AtomEnum::CARDINAL, 0, 1))
        .collect::<Result<_, _>>()?;
    let mut found = Vec::new();
    for (&window, cookie) in candidates.iter().zip(pids) {
        let owned = cookie
            .reply()
            .ok()
            .and_then(|r| r.value32().and_then(|mut v| v.next()));
        if owned == Some(pid) {
            found.push(window);
        }
    }
    let mut out = Vec::new();
    for window in found {
        if let Ok(g) = conn.get_geometry(window)?.reply() {
            out.push((window, g.width, g.height));
        }
    }
    Ok(out)
}

/// A connection to X display `display`, authorised by the entry of the
/// Xauthority file `authority` that matches it (the program's, which may
/// not be the watcher's), or by none.
fn connect(display: &str, authority: Option<PathBuf>) -> Result<RustConnection> {
    let parsed =
        parse_display(Some(display)).with_context(|| format!("bad X display `{display}`"))?;
    let entries = authority
        .and_then(|p| std::fs::read(p).ok())
        .map(|bytes| xauth_entries(&bytes))
        .unwrap_or_default();
    let mut failed = None;
    for address in parsed.connect_instruction() {
        match DefaultStream::connect(&address) {
            Ok((stream, (family, peer))) => {
                let (name, data) =
                    cookie(&entries, family, &peer, parsed.display).unwrap_or_default();
                let conn = RustConnection::connect_to_stream_with_auth_info(
                    stream,
                    parsed.screen.into(),
                    name,
                    data,
                )
                .with_context(|| format!("the X server `{display}` refused the connection"))?;
                return Ok(conn);
            }
            Err(e) => failed = Some(e),
        }
    }
    match failed {
        Some(e) => Err(e).with_context(|| format!("no X server at `{display}`")),
        None => bail!("no way to reach the X server `{display}`"),
    }
}

/// One entry of an Xauthority file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuthEntry {
    family: u16,
    address: Vec<u8>,
    number: Vec<u8>,
    name: Vec<u8>,
    data: Vec<u8>,
}

/// The entries of an Xauthority file: each a big-endian family, then
/// address, display number, name and data, each a big-endian length and
/// its bytes. A truncated last entry is left out.
fn xauth_entries(mut bytes: &[u8]) -> Vec<AuthEntry> {
    fn u16_be(b: &mut &[u8]) -> Option<u16> {
        let (head, rest) = b.split_first_chunk::<2>()?;
        *b = rest;
        Some(u16::from_be_bytes(*head))
    }
    fn field(b: &mut &[u8]) -> Option<Vec<u8>> {
        let len = u16_be(b)? as usize;
        let (head, rest) = b.split_at_checked(len)?;
        *b = rest;
        Some(head.to_vec())
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let entry = (|| {
            Some(AuthEntry {
                family: u16_be(&mut bytes)?,
                address: field(&mut bytes)?,
                number: field(&mut bytes)?,
                name: field(&mut bytes)?,
                data: field(&mut bytes)?,
            })
        })();
        match entry {
            Some(e) => out.push(e),
            None => break,
        }
    }
    out
}

/// The `MIT-MAGIC-COOKIE-1` for display `display` reached at `peer`, as
/// libXau picks it: the first entry of the same family and address (or a
/// wildcard) and the same display number (or none).
fn cookie(
    entries: &[AuthEntry],
    family: Family,
    peer: &[u8],
    display: u16,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let number = display.to_string().into_bytes();
    entries
        .iter()
        .find(|e| {
            let family_matches = Family::from(e.family) == Family::WILD
                || family == Family::WILD
                || (Family::from(e.family) == family && e.address == peer);
            family_matches
                && (e.number.is_empty() || e.number == number)
                && e.name == b"MIT-MAGIC-COOKIE-1"
        })
        .map(|e| (e.name.clone(), e.data.clone()))
}

/// The environment process `pid` started with.
fn environment(pid: u32) -> Result<BTreeMap<String, String>> {
    let path = format!("/proc/{pid}/environ");
    let bytes = std::fs::read(&path).with_context(|| format!("failed to read `{path}`"))?;
    Ok(parse_environ(&bytes))
}

/// `KEY=VALUE` pairs, NUL-separated, as `/proc/PID/environ` holds them.
fn parse_environ(bytes: &[u8]) -> BTreeMap<String, String> {
    bytes
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_programs_environment_is_read_as_the_kernel_keeps_it() {
        let env = parse_environ(b"DISPLAY=:1\0XAUTHORITY=/run/a=b\0EMPTY=\0junk\0");
        assert_eq!(env["DISPLAY"], ":1");
        assert_eq!(env["XAUTHORITY"], "/run/a=b");
        assert_eq!(env["EMPTY"], "");
        assert_eq!(env.len(), 3);
    }

    /// A program with no X display is left alone, and said to be on
    /// Wayland when it is.
    #[test]
    fn a_program_without_an_x_display_is_not_asked() {
        let started = |env: &[(&str, &str)]| {
            std::process::Command::new("sleep")
                .arg("30")
                .env_clear()
                .envs(env.iter().copied())
                .spawn()
                .unwrap()
        };
        for (env, wayland) in [
            (&[][..], false),
            (
                &[("WAYLAND_DISPLAY", "wayland-0"), ("DISPLAY", "")][..],
                true,
            ),
        ] {
            let mut child = started(env);
            let got = redraw(child.id());
            let _ = child.kill();
            let _ = child.wait();
            assert_eq!(got.unwrap(), Redrawn::NoDisplay { wayland });
        }
    }

    /// Entries as `xauth -f FILE add :1 bar deadbeef` and
    /// `add 1.2.3.4:2 MIT-MAGIC-COOKIE-1 aabbccdd` write them.
    #[test]
    fn the_cookie_is_the_entry_for_the_display_reached() {
        let mut file = vec![
            0x01, 0x00, 0x00, 0x07, b'Z', b'w', b'e', b'i', b'L', b'E', b'D', 0x00, 0x01, b'1',
            0x00, 0x03, b'b', b'a', b'r', 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef,
        ];
        file.extend([
            0x00, 0x00, 0x00, 0x04, 1, 2, 3, 4, 0x00, 0x01, b'2', 0x00, 18,
        ]);
        file.extend(b"MIT-MAGIC-COOKIE-1");
        file.extend([0x00, 0x04, 0xaa, 0xbb, 0xcc, 0xdd]);
        // A last entry cut short.
        file.extend([0x01, 0x00, 0x00, 0x09, b'x']);
        let entries = xauth_entries(&file);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].family, 256);
        assert_eq!(entries[0].address, b"ZweiLED");
        assert_eq!(entries[0].data, [0xde, 0xad, 0xbe, 0xef]);

        let cookie_of = |family, peer: &[u8], display| cookie(&entries, family, peer, display);
        assert_eq!(
            cookie_of(Family::INTERNET, &[1, 2, 3, 4], 2),
            Some((b"MIT-MAGIC-COOKIE-1".to_vec(), vec![0xaa, 0xbb, 0xcc, 0xdd]))
        );
        // Another display, another host, or a method that is not a cookie.
        assert_eq!(cookie_of(Family::INTERNET, &[1, 2, 3, 4], 3), None);
        assert_eq!(cookie_of(Family::INTERNET, &[1, 2, 3, 5], 2), None);
        assert_eq!(cookie_of(Family::LOCAL, b"ZweiLED", 1), None);
    }
}
