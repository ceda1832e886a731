//! The hostile side of `patchcore bench --suite serve`: clients that send 1 byte per second
//! (half of them their request head, half their body), and an 8000x8000 image that passes
//! the pixel limit and decodes to 183 MiB.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the slow clients saw: connections opened, how long the server kept them (seconds),
/// and the connections still open when the row ended.
#[derive(Default)]
pub struct SlowStats {
    pub connections: usize,
    pub lifetimes: Vec<f64>,
    pub open_at_end: usize,
}

impl SlowStats {
    pub fn merge(stats: Vec<SlowStats>) -> SlowStats {
        let mut all = SlowStats::default();
        for s in stats {
            all.connections += s.connections;
            all.lifetimes.extend(s.lifetimes);
            all.open_at_end += s.open_at_end;
        }
        all.lifetimes.sort_by(f64::total_cmp);
        all
    }

    /// `n connections, closed by the server after p50 X s (max Y s), Z open at the end`.
    pub fn describe(&self) -> String {
        let l = &self.lifetimes;
        if l.is_empty() {
            return format!(
                "{} connections, none closed by the server, {} open at the end",
                self.connections, self.open_at_end
            );
        }
        format!(
            "{} connections, closed by the server after {:.1} s (median; max {:.1} s), {} open at the end",
            self.connections,
            l[l.len() / 2],
            l[l.len() - 1],
            self.open_at_end
        )
    }
}

/// One slow client: connects, sends its bytes 1 per second (the head of a predict request
/// when `head`, else a full head announcing a 10 MiB PNG and then the body) and reconnects
/// whenever the server closes the connection, until `stop`.
fn slow_client(addr: SocketAddr, head: bool, stop: Arc<AtomicBool>) -> SlowStats {
    let mut stats = SlowStats::default();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(addr) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        stats.connections += 1;
        let _ = s.set_nodelay(true);
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        let opened = Instant::now();
        let start = if head {
            "POST /v1/models/bottle/predict HTTP/1.1\r\nHost: x\r\n".to_string()
        } else {
            "POST /v1/models/bottle/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n\
             Content-Length: 10485760\r\n\r\n"
                .to_string()
        };
        let mut alive = s.write_all(start.as_bytes()).is_ok();
        let drip: &[u8] = if head { b"X-Slow: a" } else { b"\x89PNG" };
        let mut i = 0;
        while alive && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(1));
            // A closed connection shows as a failed write (EPIPE/ECONNRESET) one byte later.
            alive = s.write_all(&drip[i % drip.len()..][..1]).is_ok() && s.flush().is_ok();
            i += 1;
        }
        if alive {
            stats.open_at_end += 1;
        } else {
            stats.lifetimes.push(opened.elapsed().as_secs_f64());
        }
    }
    stats
}

/// Starts `n` slow clients, half of them dripping their head and half their body.
pub fn start_slow_clients(
    addr: SocketAddr,
    n: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<SlowStats>> {
    (0..n)
        .map(|i| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || slow_client(addr, i % 2 == 0, stop))
                .expect("thread")
        })
        .collect()
}

/// An 8000x8000 RGB PNG that compresses to a few hundred KiB: a flat grey with a few lines
/// (a bomb-like input that is still a valid image within the 64-megapixel limit).
pub fn large_png(side: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(side, side, |x, y| {
        if x % 1000 == 0 || y % 1000 == 0 {
            image::Rgb([20, 20, 20])
        } else {
            image::Rgb([128, 128, 128])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG encoding in memory");
    out.into_inner()
}
