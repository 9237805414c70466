//! `rjem stats report`: the page is self-contained, and rendered by
//! headless Chromium (Debian's `chromium`) it shows every chart: each
//! chart's region of the screenshot holds many pixels of the charts'
//! colours, and a report without size-class data leaves that region
//! nearly free of them (so the count tells drawn from blank).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/stats")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("rjem-stats-report-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn report(inputs: &[String], out: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_rjem"))
        .args(["stats", "report"])
        .args(inputs)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(out).unwrap()
}

/// A section's chart region (data-y, data-h) in page pixels.
fn region(html: &str, id: &str) -> (u32, u32) {
    let at = html.find(&format!("id=\"{id}\"")).expect(id);
    let attr = |name: &str| -> u32 {
        let s = &html[at..];
        let i = s.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        s[i..i + s[i..].find('"').unwrap()].parse().unwrap()
    };
    (attr("data-y"), attr("data-h"))
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Renders `html` at 1000 px wide; returns (width, height, RGB pixels).
fn screenshot(browser: &str, html: &Path, height: u32, dir: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let png_path = dir.join(format!(
        "{}.png",
        html.file_stem().unwrap().to_str().unwrap()
    ));
    let _ = std::fs::remove_file(&png_path);
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--window-size=1000,{height}"))
        .arg(format!("--screenshot={}", png_path.display()))
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A hang guard, not a timing check.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let file = std::fs::File::open(&png_path).expect("chromium wrote no screenshot");
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    let px = buf[..info.buffer_size()]
        .chunks(ch)
        .map(|p| {
            if ch >= 3 {
                [p[0], p[1], p[2]]
            } else {
                [p[0]; 3]
            }
        })
        .collect();
    (info.width, info.height, px)
}

/// Pixels in rows y0..y1, columns x0..x1 whose colour is saturated (the
/// charts' colours; text and axes are grey).
fn coloured(img: &(u32, u32, Vec<[u8; 3]>), x0: u32, x1: u32, y0: u32, y1: u32) -> usize {
    let (w, h, px) = img;
    let mut n = 0;
    for y in y0..y1.min(*h) {
        for x in x0..x1.min(*w) {
            let [r, g, b] = px[(y * w + x) as usize];
            let (hi, lo) = (r.max(g).max(b), r.min(g).min(b));
            if hi - lo > 60 {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn report_renders_its_charts() {
    let dir = scratch();
    // Snapshots over time: rjem's, as the fixtures' programs left them.
    let inputs: Vec<String> = ["healthy", "fragmentation", "tcache", "arenas"]
        .iter()
        .map(|n| data(&format!("{n}.rjem.json")))
        .collect();
    let html_path = dir.join("report.html");
    let html = report(&inputs, &html_path);
    // Self-contained: nothing to fetch (the SVG namespace is a name only).
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for bad in ["http://", "https://", "<script", "<link", "src=", "@import"] {
        assert!(!without_ns.contains(bad), "report refers to {bad}");
    }
    for id in ["breakdown", "classes", "arenas", "timeline", "diagnoses"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("Too many arenas for the thread count"));
    // A summary-only input: no size classes, no arenas.
    let summary = dir.join("summary.txt");
    std::fs::write(
        &summary,
        "allocated 4.2 GB, active 5.3 GB, metadata 12.7 GB, resident 19.6 GB, \
         mapped 21.6 GB, retained 534 GB\n",
    )
    .unwrap();
    let blank_path = dir.join("blank.html");
    let blank = report(&[summary.to_str().unwrap().to_string()], &blank_path);

    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium (.ci/run does)"
        );
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let height = |h: &str| -> u32 {
        let i = h.find("data-height=\"").unwrap() + 13;
        h[i..i + h[i..].find('"').unwrap()].parse().unwrap()
    };
    let img = screenshot(browser, &html_path, height(&html), &dir);
    assert_eq!(img.0, 1000);
    for id in ["breakdown", "classes", "arenas", "timeline"] {
        let (y, h) = region(&html, id);
        let n = coloured(&img, 20, 980, y, y + h);
        assert!(
            n > 3000,
            "chart {id} at y {y}..{}: {n} coloured pixels",
            y + h
        );
        // The margin beside it is blank.
        assert_eq!(coloured(&img, 985, 1000, y, y + h), 0, "{id} margin");
    }
    let img2 = screenshot(browser, &blank_path, height(&blank), &dir);
    let (y, h) = region(&blank, "classes");
    let n = coloured(&img2, 20, 980, y, y + h);
    assert!(n < 1000, "an empty classes chart has {n} coloured pixels");
    let (y, h) = region(&blank, "breakdown");
    assert!(coloured(&img2, 20, 980, y, y + h) > 3000);
    std::fs::remove_dir_all(&dir).unwrap();
}
