//! Debian's Chromium, headless, on local files: the DOM after scripts ran, the console, and
//! screenshots, plus the little PNG decoding the pixel checks need. Outside CI a machine
//! without Chromium skips loudly; with `DRILLBOOK_REQUIRE_BROWSER=1` (CI) it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test support fails loudly on purpose.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The browser, or `None` (after saying so) when it is not installed and not required.
pub fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from(
        std::env::var("DRILLBOOK_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("DRILLBOOK_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "DRILLBOOK_REQUIRE_BROWSER=1 but {} does not exist (apt-get install chromium)",
        path.display()
    );
    eprintln!(
        "SKIPPED: no Chromium at {} (apt-get install chromium)",
        path.display()
    );
    None
}

/// Light or dark system setting, as the page sees it (`prefers-color-scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Theme {
    Light,
    Dark,
}

/// One headless load of a file: the serialized DOM and the browser's log (console lines).
#[derive(Debug)]
pub struct Loaded {
    pub dom: String,
    pub log: String,
}

impl Loaded {
    /// The lines the page wrote to the console (headless Chromium does not say their level).
    pub fn console(&self) -> Vec<&str> {
        self.log.lines().filter(|l| l.contains("CONSOLE")).collect()
    }
}

fn headless(browser: &Path, profile: &Path, theme: Theme) -> Command {
    let mut command = Command::new(browser);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    let scheme = match theme {
        Theme::Dark => 0,
        Theme::Light => 1,
    };
    command.arg(format!("--blink-settings=preferredColorScheme={scheme}"));
    command
}

/// Runs a bounded browser command and returns its output.
fn bounded(mut command: Command) -> std::process::Output {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chromium");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        out.read_to_end(&mut text).unwrap();
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        err.read_to_end(&mut text).unwrap();
        text
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 90s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::process::Output {
        status,
        stdout: reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// The DOM of `file` after its scripts ran, and every console line the page produced.
pub fn load(browser: &Path, file: &Path, theme: Theme) -> Loaded {
    let profile = tempfile::tempdir().unwrap();
    let mut command = headless(browser, profile.path(), theme);
    command
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(format!("file://{}", file.display()));
    let output = bounded(command);
    assert!(
        output.status.success(),
        "chromium --dump-dom failed: {output:?}"
    );
    Loaded {
        dom: String::from_utf8_lossy(&output.stdout).into_owned(),
        log: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A screenshot of `file` at `width`×`height` into `png`.
pub fn screenshot(browser: &Path, file: &Path, theme: Theme, png: &Path, size: (u32, u32)) {
    let profile = tempfile::tempdir().unwrap();
    let mut command = headless(browser, profile.path(), theme);
    command
        .arg(format!("--window-size={},{}", size.0, size.1))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", file.display()));
    let output = bounded(command);
    assert!(
        output.status.success(),
        "chromium --screenshot failed: {output:?}"
    );
    assert!(png.exists(), "no screenshot at {}", png.display());
}

/// An 8-bit RGB(A) PNG's pixels as RGB triples, row by row.
#[derive(Debug)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<[u8; 3]>,
}

impl Image {
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        self.rgb[y * self.width + x]
    }
}

/// Decodes the PNGs Chromium writes (8-bit RGB or RGBA, not interlaced).
pub fn decode_png(bytes: &[u8]) -> Image {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut pos, mut idat) = (8, Vec::new());
    let (mut width, mut height, mut channels) = (0usize, 0usize, 0usize);
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let data = &bytes[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(data[8], 8, "bit depth");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("PNG colour type {other} not handled"),
                };
                assert_eq!(data[12], 0, "interlaced PNG");
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width * channels;
    let mut previous = vec![0u8; stride];
    let mut rgb = Vec::with_capacity(width * height);
    for row in raw.chunks(stride + 1).take(height) {
        let (filter, data) = (row[0], &row[1..]);
        let mut line = vec![0u8; stride];
        for i in 0..stride {
            let left = if i >= channels { line[i - channels] } else { 0 };
            let up = previous[i];
            let up_left = if i >= channels {
                previous[i - channels]
            } else {
                0
            };
            let predictor = match filter {
                0 => 0,
                1 => left,
                2 => up,
                3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                4 => paeth(left, up, up_left),
                other => panic!("PNG filter {other}"),
            };
            line[i] = data[i].wrapping_add(predictor);
        }
        rgb.extend(line.chunks(channels).map(|p| [p[0], p[1], p[2]]));
        previous = line;
    }
    assert_eq!(rgb.len(), width * height, "truncated PNG");
    Image { width, height, rgb }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let (a16, b16, c16) = (i16::from(a), i16::from(b), i16::from(c));
    let p = a16 + b16 - c16;
    let (pa, pb, pc) = ((p - a16).abs(), (p - b16).abs(), (p - c16).abs());
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}
