//! A small SVG writer for the tool's charts (`rjem stats report`, `rjem
//! bench`): shapes and text appended to a document of fixed size, every
//! string escaped. Owns nothing else: each chart decides its own layout.

use std::fmt::Write as _;

/// Text escaped for XML (element text and attribute values).
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG document being written.
pub struct Svg {
    width: f64,
    height: f64,
    body: String,
}

/// How text is anchored at its x.
#[derive(Clone, Copy)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

impl Svg {
    pub fn new(width: f64, height: f64) -> Svg {
        Svg {
            width,
            height,
            body: String::new(),
        }
    }

    /// A filled rectangle, with a tooltip when `title` is not empty.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, title: &str) {
        let _ = write!(
            self.body,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"",
            w.max(0.0),
            h.max(0.0),
            esc(fill)
        );
        if title.is_empty() {
            self.body.push_str("/>\n");
        } else {
            let _ = writeln!(self.body, "><title>{}</title></rect>", esc(title));
        }
    }

    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, width: f64) {
        let _ = writeln!(
            self.body,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{}\" \
             stroke-width=\"{width}\"/>",
            esc(stroke)
        );
    }

    /// A line through `points`, with dots on them.
    pub fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, width: f64) {
        let pts: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            self.body,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\"/>",
            pts.join(" "),
            esc(stroke)
        );
        for (x, y) in points {
            let _ = writeln!(
                self.body,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{:.1}\" fill=\"{}\"/>",
                width + 1.0,
                esc(stroke)
            );
        }
    }

    pub fn text(&mut self, x: f64, y: f64, s: &str, anchor: Anchor, size: f64, fill: &str) {
        self.put_text((x, y), s, anchor, size, fill, false);
    }

    /// Text in bold: titles and emphasised labels.
    pub fn bold_text(&mut self, x: f64, y: f64, s: &str, anchor: Anchor, size: f64, fill: &str) {
        self.put_text((x, y), s, anchor, size, fill, true);
    }

    fn put_text(
        &mut self,
        (x, y): (f64, f64),
        s: &str,
        anchor: Anchor,
        size: f64,
        fill: &str,
        bold: bool,
    ) {
        let a = match anchor {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        let weight = if bold { " font-weight=\"bold\"" } else { "" };
        let _ = writeln!(
            self.body,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{a}\" font-size=\"{size}\"{weight} \
             fill=\"{}\">{}</text>",
            esc(fill),
            esc(s)
        );
    }

    /// The document, white background first.
    pub fn finish(self) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
             viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"sans-serif\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
            self.body,
            w = self.width,
            h = self.height
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_closes() {
        let mut s = Svg::new(10.0, 10.0);
        s.rect(0.0, 0.0, 5.0, -1.0, "red", "a<b & \"c\"");
        s.text(1.0, 2.0, "x<y", Anchor::Middle, 9.0, "#000");
        s.bold_text(1.0, 2.0, "T", Anchor::End, 14.0, "#000");
        let out = s.finish();
        assert!(
            out.contains("font-size=\"14\" font-weight=\"bold\""),
            "{out}"
        );
        assert!(out.starts_with("<svg") && out.trim_end().ends_with("</svg>"));
        assert!(out.contains("a&lt;b &amp; &quot;c&quot;") && out.contains("x&lt;y"));
        assert!(out.contains("height=\"0.0\""), "negative sizes clamp");
    }
}
