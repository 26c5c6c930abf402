//! The HTML report as a browser shows it: a real headless Chromium takes a screenshot of
//! a rolled-back launch's report, and the picture must hold the charts, not a blank page.
//! Needs Chromium (`apt-get install -y chromium`); without it this test fails.

mod support;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use liftoff_report::{Format, render};
use support::*;

const TIMEOUT: Duration = Duration::from_secs(90);
const VIEWPORT: (u32, u32) = (1200, 2400);

/// The chart colours of `crates/report/src/chart.rs`.
const WEIGHT: [u8; 3] = [0x70, 0x48, 0xe8];
const STABLE: [u8; 3] = [0x1c, 0x7e, 0xd6];
const CANDIDATE: [u8; 3] = [0xf7, 0x67, 0x07];
const ROLLBACK: [u8; 3] = [0xe0, 0x31, 0x31];

fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("LIFTOFF_CHROMIUM") {
        return path.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "Chromium is needed to check that the HTML report renders, and none was found \
                 on PATH or in /usr/bin: install it with `apt-get install -y chromium` \
                 (or set LIFTOFF_CHROMIUM to a Chromium binary)"
            )
        })
}

/// A browser started in a process group of its own; dropping it kills that group (the
/// browser and its helpers), by its id.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

fn screenshot(html: &Path, dir: &Path) -> Vec<u8> {
    use std::os::unix::process::CommandExt;
    let shot = dir.join("shot.png");
    let log = std::fs::File::create(dir.join("chromium.log")).unwrap();
    let binary = chromium();
    let mut browser = Browser(
        Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .arg(format!("--window-size={},{}", VIEWPORT.0, VIEWPORT.1))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("file://{}", html.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display())),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = browser.0.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            panic!("Chromium took more than {TIMEOUT:?} to take a screenshot; killed it");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.join("chromium.log")).unwrap_or_default();
    assert!(status.success(), "Chromium failed ({status}):\n{log}");
    std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}):\n{log}"))
}

/// RGB pixels, row by row.
fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    let mut decoder = png::Decoder::new(Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    assert!(
        channels >= 3,
        "a colour screenshot, got {:?}",
        info.color_type
    );
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

fn near(p: [u8; 3], c: [u8; 3]) -> bool {
    p.iter().zip(c).all(|(a, b)| a.abs_diff(b) <= 24)
}

/// Separate bands of rows holding pixels of a colour (one per chart it is drawn in).
fn bands(width: u32, pixels: &[[u8; 3]], color: [u8; 3]) -> usize {
    let rows: Vec<usize> = pixels
        .chunks_exact(width as usize)
        .enumerate()
        .filter(|(_, row)| row.iter().filter(|p| near(**p, color)).count() >= 1)
        .map(|(y, _)| y)
        .collect();
    1 + rows.windows(2).filter(|w| w[1] - w[0] > 40).count() - usize::from(rows.is_empty())
}

#[test]
fn chromium_renders_the_rolled_back_report_with_its_charts() {
    let sim = rolled_back_by_trigger();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(
        &page,
        render(&sim.state, &sim.journal, &meta(), Format::Html),
    )
    .unwrap();

    let (width, height, pixels) = decode(&screenshot(&page, dir.path()));
    assert_eq!((width, height), VIEWPORT);
    let count = |color: [u8; 3]| pixels.iter().filter(|p| near(**p, color)).count();
    let inked = pixels.iter().filter(|p| p.iter().any(|c| *c < 225)).count();
    let (weight, stable, candidate, rollback) = (
        count(WEIGHT),
        count(STABLE),
        count(CANDIDATE),
        count(ROLLBACK),
    );
    let counts = format!(
        "inked {inked}, weight {weight}, stable {stable}, candidate {candidate}, rollback {rollback}"
    );
    assert!(inked > pixels.len() / 50, "the page looks blank: {counts}");
    // Each series is a line of a few hundred pixels at least; legends alone are not.
    assert!(weight > 800, "no weight line: {counts}");
    assert!(stable > 1_500, "no stable series: {counts}");
    assert!(candidate > 1_500, "no candidate series: {counts}");
    assert!(rollback > 300, "no rollback marker: {counts}");
    assert_eq!(
        bands(width, &pixels, ROLLBACK),
        3,
        "the rollback is marked on each of the three charts: {counts}"
    );
    assert!(
        bands(width, &pixels, CANDIDATE) >= 2,
        "the candidate has an error-rate and a p95 chart: {counts}"
    );
}
