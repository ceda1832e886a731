//! `cargo xtask bench --suite growth` as a process on generated images: one row per size and
//! ratio, the exact and the partitioned greedy both run, the partitioned one's covering radius
//! reported against the exact one's.

use std::process::Command;

#[test]
fn growth_suite_times_exact_and_partitioned_greedy_per_size_and_ratio() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--suite", "growth", "--size", "8", "--size", "16"])
        .args(["--ratio", "0.05", "--ratio", "0.2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| images"))
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    for (row, (images, ratio)) in rows
        .iter()
        .zip([(8, 0.05), (8, 0.2), (16, 0.05), (16, 0.2)])
    {
        assert_eq!(row[0], images.to_string());
        assert_eq!(row[1], (images * 784).to_string());
        assert_eq!(row[2].parse::<f64>().unwrap(), ratio);
        let bank: usize = row[3].parse().unwrap();
        assert_eq!(bank, ((images * 784) as f64 * ratio).ceil() as usize);
        // Both selections ran: times, and the partitioned radius against the exact one.
        for col in [4, 5, 7] {
            assert!(row[col].parse::<f64>().unwrap() > 0.0, "{row:?}");
        }
        let rel: f64 = row[9].parse().unwrap();
        assert!(rel > 0.5 && rel < 1.5, "radius ratio {rel}: {row:?}");
    }
}
