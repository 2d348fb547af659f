//! What CLI commands and the server that owns a host say to each other over
//! `STATE.sock`: one JSON object a line, a request and then its reply.
//!
//! A command reads the host (`get`), computes its change locally, and
//! offers the whole new state (`put`) against the generation it read. The
//! server applies it only if nothing changed in between (else `moved`, and
//! the command runs again on the newer host), so every change, from the
//! tree or from the CLI, is applied by one process in one order.
//!
//! Both ends check who is at the other: the server serves only root and its
//! own user; a command talks only to a server run by root or by itself (a
//! socket someone else planted would feed it a false host).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use apmatrix_model::{Host, HostState};
use rustix::fs::FileType;
use serde::{Deserialize, Serialize};

use super::dir::StateDir;
use super::snapshot::Names;
use super::StoreError;

/// The longest message either side reads (a host state is a few MiB).
const MESSAGE_LIMIT: u64 = 256 << 20;
/// How long either side waits for the other's next message.
pub const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// The host as it is now.
    Get,
    /// Replace the host by `state` if it is still at generation `base`.
    Put { base: u64, state: Box<HostState> },
    /// Which server is this?
    Who,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    State {
        generation: u64,
        state: Box<HostState>,
    },
    /// The put is applied and durable, and the tree shows it.
    Done {
        generation: u64,
    },
    /// The host changed since `base`: nothing was applied.
    Moved,
    /// The request was refused; nothing was applied.
    Refused {
        reason: String,
    },
    /// The server is stopping; nothing was applied.
    Stopped,
    Server {
        pid: u32,
        serving: String,
    },
}

/// Reads one message; `None` at a clean end of the stream.
pub fn read_message<T: for<'de> Deserialize<'de>>(
    reader: &mut BufReader<UnixStream>,
) -> io::Result<Option<T>> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(MESSAGE_LIMIT + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") {
        let why = if n as u64 > MESSAGE_LIMIT {
            "message too long"
        } else {
            "message cut short"
        };
        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub fn write_message<T: Serialize>(stream: &mut UnixStream, message: &T) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    bytes.push(b'\n');
    stream.write_all(&bytes)
}

/// The user at the other end of a unix socket.
pub fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    Ok(rustix::net::sockopt::socket_peercred(stream)?.uid.as_raw())
}

/// A command's connection to the server that owns its host.
pub struct Client {
    reader: BufReader<UnixStream>,
    stream: UnixStream,
    socket: std::path::PathBuf,
}

/// What came of offering a change.
pub enum Offered {
    /// Applied: the host is now at this generation.
    Done(u64),
    /// Someone changed the host first: run the change again.
    Moved,
}

impl Client {
    /// Connects to the server, if one is serving: `None` when no server
    /// answers (none runs, or one is starting or stopping).
    pub fn connect(dir: &StateDir, names: &Names) -> Result<Option<Client>, StoreError> {
        let socket = dir.path().join(&names.socket);
        let untrusted = |why: String| StoreError::Untrusted {
            path: socket.clone(),
            why,
        };
        let Some(st) = dir.stat(&names.socket)? else {
            return Ok(None);
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
            return Err(untrusted(
                "is not a socket: it is not apmatrix's; remove it if you did not make it".into(),
            ));
        }
        if !dir.ours(&st) {
            return Err(untrusted(format!(
                "belongs to uid {}: another user may have planted it; remove it",
                st.st_uid
            )));
        }
        let stream = match UnixStream::connect(dir.socket_path(&names.socket)) {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
                ) =>
            {
                return Ok(None); // left by a server that died
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path: socket,
                    source,
                })
            }
        };
        let io = |source| StoreError::Io {
            path: socket.clone(),
            source,
        };
        let server = peer_uid(&stream).map_err(io)?;
        let euid = rustix::process::geteuid().as_raw();
        if server != 0 && server != euid {
            return Err(untrusted(format!(
                "is served by uid {server}, neither you nor root: not talking to it"
            )));
        }
        stream.set_read_timeout(Some(PATIENCE)).map_err(io)?;
        let reader = BufReader::new(stream.try_clone().map_err(io)?);
        Ok(Some(Client {
            reader,
            stream,
            socket,
        }))
    }

    fn ask(&mut self, request: &Request) -> Result<Option<Reply>, StoreError> {
        let io = |source| StoreError::Io {
            path: self.socket.clone(),
            source,
        };
        match write_message(&mut self.stream, request) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(None),
            Err(e) => return Err(io(e)),
        }
        read_message(&mut self.reader).map_err(io)
    }

    fn unexpected(&self, reply: Option<Reply>) -> StoreError {
        let why = match reply {
            Some(Reply::Refused { reason }) => reason,
            Some(other) => format!("unexpected answer {other:?}"),
            None => "the server stopped".into(),
        };
        StoreError::Server {
            socket: self.socket.clone(),
            why,
        }
    }

    /// The host and its generation; `None` if the server went away (then
    /// nothing was done: start over).
    pub fn get(&mut self) -> Result<Option<(u64, Host)>, StoreError> {
        match self.ask(&Request::Get)? {
            Some(Reply::State { generation, state }) => {
                let host = Host::from_state(*state).map_err(|e| StoreError::Server {
                    socket: self.socket.clone(),
                    why: format!("it sent a host that does not load: {e}"),
                })?;
                Ok(Some((generation, host)))
            }
            None | Some(Reply::Stopped) => Ok(None),
            other => Err(self.unexpected(other)),
        }
    }

    /// Offers `host` as the change of generation `base`. `Ok(None)` when
    /// the server stopped before taking it (nothing was applied).
    pub fn put(&mut self, base: u64, host: &Host) -> Result<Option<Offered>, StoreError> {
        let request = Request::Put {
            base,
            state: Box::new(host.to_state()),
        };
        match self.ask(&request)? {
            Some(Reply::Done { generation }) => Ok(Some(Offered::Done(generation))),
            Some(Reply::Moved) => Ok(Some(Offered::Moved)),
            Some(Reply::Stopped) => Ok(None),
            // It read the change and went away: applied or not, unknown.
            None => Err(StoreError::Server {
                socket: self.socket.clone(),
                why: "the server stopped while making the change; it may or may not have \
                      been made: look before you repeat it"
                    .into(),
            }),
            other => Err(self.unexpected(other)),
        }
    }

    /// Who serves: (pid, what it serves as).
    pub fn who(&mut self) -> Result<Option<(u32, String)>, StoreError> {
        match self.ask(&Request::Who)? {
            Some(Reply::Server { pid, serving }) => Ok(Some((pid, serving))),
            None | Some(Reply::Stopped) => Ok(None),
            other => Err(self.unexpected(other)),
        }
    }
}
