//! Request framing as the client sent it, read alongside hyper.
//!
//! hyper accepts a request with both `Content-Length` and `Transfer-Encoding: chunked`: it
//! drops the length and reads chunks (RFC 9112 §6.3 allows that, or a 400). Behind a proxy
//! that frames by the length instead, the two disagree on where the request ends: request
//! smuggling. The service answers such requests 400. hyper removes the header before the
//! routes see the request, so [`FramingScan`] follows the raw bytes of a connection (request
//! heads, fixed-length bodies and chunked bodies) and reports a head with both headers.

/// Where the scan is in the byte stream of one connection.
#[derive(Debug)]
enum State {
    /// Reading a request head (up to the empty line).
    Head(Vec<u8>),
    /// Skipping this many body bytes.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkSize(Vec<u8>),
    /// Skipping a chunk's data and its CRLF.
    ChunkData(u64),
    /// Reading trailer lines up to the empty line.
    Trailers(Vec<u8>),
    /// No longer following (a conflict was found, or framing hyper refuses anyway).
    Off,
}

/// Largest request head or line followed; hyper refuses longer heads itself.
const MAX_LINE: usize = 64 << 10;

/// Follows the request framing of one connection's incoming bytes.
#[derive(Debug)]
pub(crate) struct FramingScan {
    state: State,
}

impl Default for FramingScan {
    fn default() -> Self {
        Self {
            state: State::Head(Vec::new()),
        }
    }
}

/// The header facts that decide a request's framing.
fn framing_of(head: &[u8]) -> (Option<u64>, Option<bool>) {
    let text = String::from_utf8_lossy(head);
    let (mut length, mut chunked) = (None, None);
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<u64>().unwrap_or(u64::MAX));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        }
    }
    (length, chunked)
}

/// Appends to a line buffer up to `end` (inclusive); returns the bytes consumed and whether
/// the buffer now ends with `end`.
fn take_until(buf: &mut Vec<u8>, input: &[u8], end: &[u8]) -> (usize, bool) {
    for (i, &b) in input.iter().enumerate() {
        buf.push(b);
        if buf.ends_with(end) {
            return (i + 1, true);
        }
    }
    (input.len(), false)
}

impl FramingScan {
    /// Feeds the next bytes read from the connection; true once a request head carried both
    /// `Content-Length` and `Transfer-Encoding` (the scan stops there: hyper closes the
    /// connection after that request).
    pub(crate) fn feed(&mut self, mut input: &[u8]) -> bool {
        while !input.is_empty() {
            let used = match &mut self.state {
                State::Off => return false,
                State::Head(buf) => {
                    let (n, done) = take_until(buf, input, b"\r\n\r\n");
                    if done {
                        // Empty lines between requests are allowed (RFC 9112 §2.2).
                        let head = std::mem::take(buf);
                        let head = head.trim_ascii_start();
                        if !head.is_empty() {
                            match framing_of(head) {
                                (Some(_), Some(_)) => {
                                    self.state = State::Off;
                                    return true;
                                }
                                (None, Some(true)) => self.state = State::ChunkSize(Vec::new()),
                                (None, Some(false)) => self.state = State::Off,
                                (Some(len), None) => self.state = State::Body(len),
                                (None, None) => {}
                            }
                        }
                    } else if buf.len() > MAX_LINE {
                        self.state = State::Off;
                    }
                    n
                }
                State::Body(left) => {
                    let n = (*left).min(input.len() as u64);
                    *left -= n;
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                    n as usize
                }
                State::ChunkSize(buf) => {
                    let (n, done) = take_until(buf, input, b"\r\n");
                    if done {
                        let line = String::from_utf8_lossy(&buf[..buf.len() - 2]).into_owned();
                        let hex = line.split(';').next().unwrap_or("").trim();
                        self.state = match u64::from_str_radix(hex, 16) {
                            Ok(0) => State::Trailers(Vec::new()),
                            Ok(size) => State::ChunkData(size.saturating_add(2)),
                            Err(_) => State::Off,
                        };
                    } else if buf.len() > MAX_LINE {
                        self.state = State::Off;
                    }
                    n
                }
                State::ChunkData(left) => {
                    let n = (*left).min(input.len() as u64);
                    *left -= n;
                    if *left == 0 {
                        self.state = State::ChunkSize(Vec::new());
                    }
                    n as usize
                }
                State::Trailers(buf) => {
                    let (n, done) = take_until(buf, input, b"\r\n");
                    if done {
                        if buf.len() == 2 {
                            self.state = State::Head(Vec::new());
                        } else {
                            buf.clear();
                        }
                    } else if buf.len() > MAX_LINE {
                        self.state = State::Off;
                    }
                    n
                }
            };
            input = &input[used..];
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::FramingScan;

    /// Feeds `bytes` in pieces of `step`; whether a conflict was reported.
    fn scan(bytes: &[u8], step: usize) -> bool {
        let mut s = FramingScan::default();
        bytes.chunks(step).any(|c| s.feed(c))
    }

    const PLAIN: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    const CHUNKED: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n";
    const BOTH: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\
        transfer-encoding: chunked\r\n\r\n0\r\n\r\n";

    #[test]
    fn both_headers_are_found_in_any_order_and_any_split() {
        let te_first =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n";
        for step in [1, 2, 7, 1000] {
            assert!(scan(BOTH, step), "step {step}");
            assert!(scan(te_first, step), "step {step}");
            assert!(!scan(PLAIN, step), "step {step}");
            assert!(!scan(CHUNKED, step), "step {step}");
        }
    }

    #[test]
    fn bodies_are_skipped_so_later_requests_are_read_as_heads() {
        for step in [1, 3, 1000] {
            // A conflicting request after a fixed-length one and after a chunked one.
            assert!(scan(&[PLAIN, b"\r\n", BOTH].concat(), step), "step {step}");
            assert!(scan(&[CHUNKED, BOTH].concat(), step), "step {step}");
            // Body bytes that look like a conflicting head are body bytes.
            let inner =
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
            let head = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", inner.len());
            assert!(
                !scan(&[head.as_bytes(), inner, PLAIN].concat(), step),
                "step {step}"
            );
        }
    }
}
