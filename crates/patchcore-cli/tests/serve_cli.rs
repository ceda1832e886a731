//! `patchcore serve` as a process: SIGHUP reloads the models folder at once, SIGTERM
//! finishes the request in flight and exits 0.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use patchcore_data::synthetic::{SyntheticSpec, generate};
use patchcore_testkit::http::{read_reply, request};

const BIN: &str = env!("CARGO_BIN_EXE_patchcore");

fn kill(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {signal} {pid}");
}

/// A model folder `models/` holding `a.patchcore`, fitted on a small generated category under
/// `data/`; returns one test image's bytes.
fn fit_demo(d: &Path) -> Vec<u8> {
    let spec = SyntheticSpec {
        train: 4,
        test_good: 2,
        test_per_defect: 2,
        ..Default::default()
    };
    generate(&d.join("data"), &spec).unwrap();
    std::fs::create_dir_all(d.join("models")).unwrap();
    let fit = Command::new(BIN)
        .args([
            "fit",
            "--data-root",
            "data",
            "--model",
            "models/a.patchcore",
            "--quiet",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        fit.status.success(),
        "{}",
        String::from_utf8_lossy(&fit.stderr)
    );
    std::fs::read(
        std::fs::read_dir(d.join("data").join(&spec.category).join("test/good"))
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path(),
    )
    .unwrap()
}

/// `patchcore serve --models models` in `d` on a free port, with `extra` arguments; returns the
/// process and the address it printed.
fn spawn_serve(d: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["serve", "--models", "models", "--bind", "127.0.0.1:0"])
        .args(extra)
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("no address in {line:?}: {e}"));
    (child, addr)
}

#[test]
fn sighup_reloads_and_sigterm_drains_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let img = fit_demo(d);
    // The periodic check is set far away: only SIGHUP can reload within the test.
    let (mut child, addr) = spawn_serve(d, &["--reload-interval-ms", "600000"]);
    let names = || -> Vec<String> {
        request(addr, "GET", "/v1/models", &[], b"").json()["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(), ["a"]);

    std::fs::copy(d.join("models/a.patchcore"), d.join("models/b.patchcore")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(names(), ["a"], "no reload without SIGHUP");
    kill(child.id(), "-HUP");
    let mut reloaded = false;
    for _ in 0..100 {
        if names() == ["a", "b"] {
            reloaded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(reloaded, "SIGHUP loads the new file");

    // SIGTERM while a request is half sent: it is answered, then the process exits 0.
    let mut c = TcpStream::connect(addr).unwrap();
    write!(
        c,
        "POST /v1/models/b/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        img.len()
    )
    .unwrap();
    c.write_all(&img[..img.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    kill(child.id(), "-TERM");
    std::thread::sleep(Duration::from_millis(200));
    c.write_all(&img[img.len() / 2..]).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let r = read_reply(&mut c);
    assert_eq!(r.status, 200, "{}", r.text());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn sigterm_with_a_stalled_client_exits_0_within_the_drain_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fit_demo(d);
    let (mut child, addr) = spawn_serve(d, &["--drain-timeout-ms", "1000"]);
    assert_eq!(request(addr, "GET", "/readyz", &[], b"").status, 200);
    // A head that never ends, and a body that never ends.
    let mut head = TcpStream::connect(addr).unwrap();
    head.write_all(b"POST /v1/models/a/predict HTTP/1.1\r\nHost: x\r\nX-Partial: ab")
        .unwrap();
    let mut body = TcpStream::connect(addr).unwrap();
    body.write_all(
        b"POST /v1/models/a/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t = std::time::Instant::now();
    kill(child.id(), "-TERM");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(8) {
            let _ = child.kill();
            panic!("still running {:?} after SIGTERM", t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}
