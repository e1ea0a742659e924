//! The page shell every HTML page shares: document head with a Content-Security-Policy that
//! forbids every fetch (the file works offline and cannot call out), the theme (light and
//! dark, following the system setting), a navigation bar, titled sections and the script
//! that enhances hovering. Callers hand in body fragments they have escaped.

use std::fmt::Write as _;

use super::escape;

/// Nothing may be loaded from anywhere; only the inline style and script run.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                   img-src data:; base-uri 'none'; form-action 'none'";

const STYLE: &str = r#"
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--muted:#59636e;--line:#d1d9e0;--panel:#f6f8fa;
--pass:#1a7f37;--fail:#cf222e;--inc:#9a6700;--band-pass:rgba(26,127,55,.08);--band-fail:rgba(207,34,46,.10);
--band-inc:rgba(154,103,0,.10);--fault:#cf222e;--guard:#8250df;--undo:#0969da;
--s0:#0969da;--s1:#bc4c00;--s2:#8250df;--s3:#1a7f37;--s4:#cf222e;--s5:#6e7781;--s6:#bf3989;--s7:#0a7d8c}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#30363d;--panel:#161b22;
--pass:#3fb950;--fail:#f85149;--inc:#d29922;--band-pass:rgba(63,185,80,.10);--band-fail:rgba(248,81,73,.14);
--band-inc:rgba(210,153,34,.12);--fault:#f85149;--guard:#bc8cff;--undo:#58a6ff;
--s0:#58a6ff;--s1:#f0883e;--s2:#bc8cff;--s3:#3fb950;--s4:#ff7b72;--s5:#9198a1;--s6:#f778ba;--s7:#39c5cf}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1200px;margin:0 auto;padding:16px 20px 48px}
header.top{border-bottom:1px solid var(--line);padding-bottom:8px}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.6em 0 .5em;border-bottom:1px solid var(--line);padding-bottom:4px}
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:8px 10px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
nav{display:flex;flex-wrap:wrap;gap:4px 14px;margin:10px 0;font-size:.92em}
a{color:var(--s0)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:10px 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
.verdict{display:inline-block;padding:1px 10px;border-radius:12px;font-weight:600;color:#fff;text-transform:uppercase;font-size:.8em;letter-spacing:.04em;vertical-align:middle}
.verdict.pass{background:var(--pass)}.verdict.fail,.verdict.aborted{background:var(--fail)}
.verdict.inconclusive,.verdict.interrupted{background:var(--inc)}
td.pass{color:var(--pass);font-weight:600}td.fail{color:var(--fail);font-weight:600}td.inconclusive{color:var(--inc);font-weight:600}
tr.inconclusive td.detail::before{content:"inconclusive: ";font-weight:600;color:var(--inc)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--panel);position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
ul.warnings li{color:var(--inc)}
figure.chart{margin:14px 0 22px}figure.chart figcaption{font-weight:600;margin-bottom:2px}
figure.chart>svg{width:100%;height:auto;display:block;overflow:visible}
svg text{fill:var(--muted);font:11px system-ui,sans-serif}svg text.y{text-anchor:end}svg text.x{text-anchor:middle}
svg .grid{stroke:var(--line);stroke-width:.6}svg .base{stroke:var(--muted);stroke-width:1}
.series{fill:none;stroke-width:1.6;stroke-linejoin:round}.series.dashed{stroke-dasharray:5 3;stroke-width:1.3}
.s0{stroke:var(--s0)}.s1{stroke:var(--s1)}.s2{stroke:var(--s2)}.s3{stroke:var(--s3)}.s4{stroke:var(--s4)}.s5{stroke:var(--s5)}.s6{stroke:var(--s6)}.s7{stroke:var(--s7)}
.band rect{fill:var(--band-inc)}.band.pass rect{fill:var(--band-pass)}.band.fail rect{fill:var(--band-fail)}
.band text{font-weight:600}.band .edge{stroke:var(--muted);stroke-width:.8;stroke-dasharray:2 2}
.mark line{stroke-width:1.4;stroke-dasharray:3 2}.mark.fault line{stroke:var(--fault)}.mark.guard line{stroke:var(--guard);stroke-width:2}
.mark.undo line{stroke:var(--undo);opacity:.7}.mark.fault text{fill:var(--fault)}.mark.guard text{fill:var(--guard)}.mark.undo text{fill:var(--undo)}
.hit{fill:transparent}.hit:hover{fill:var(--line);fill-opacity:.35}
.cursor{stroke:var(--muted);stroke-width:1;pointer-events:none}
ul.legend{list-style:none;display:flex;flex-wrap:wrap;gap:2px 16px;padding:0;margin:4px 0 0 58px;font-size:.88em}
ul.legend svg.swatch{width:24px;height:8px;margin-right:5px;vertical-align:middle}
#tip{position:fixed;z-index:10;pointer-events:none;background:var(--panel);color:var(--fg);border:1px solid var(--line);border-radius:6px;
padding:6px 9px;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;white-space:pre;box-shadow:0 2px 8px rgba(0,0,0,.2)}
button.copy{margin-left:8px;font-size:.8em}
footer{margin-top:40px;color:var(--muted);font-size:.85em}
@media print{nav,button.copy{display:none}}
"#;

/// Enhancement only: the page is complete without it. Values come from the SVG `<title>`s
/// the server wrote; nothing here builds markup from data (textContent only).
const SCRIPT: &str = r#"
(function(){
  "use strict";
  var root=document.documentElement;
  window.addEventListener("error",function(e){root.setAttribute("data-script-error",String(e.message));});
  var tip=document.createElement("div");tip.id="tip";tip.hidden=true;document.body.appendChild(tip);
  Array.prototype.forEach.call(document.querySelectorAll("figure.chart > svg"),function(svg){
    var cursor=svg.querySelector(".cursor");
    Array.prototype.forEach.call(svg.querySelectorAll("rect.hit"),function(hit){
      var title=hit.querySelector("title");
      if(title){hit.setAttribute("data-tip",title.textContent);title.remove();}
    });
    svg.addEventListener("mousemove",function(e){
      var hit=e.target.closest?e.target.closest("rect.hit"):null;
      if(!hit){tip.hidden=true;cursor.setAttribute("visibility","hidden");return;}
      var x=parseFloat(hit.getAttribute("x"))+parseFloat(hit.getAttribute("width"))/2;
      cursor.setAttribute("x1",x);cursor.setAttribute("x2",x);cursor.setAttribute("visibility","visible");
      tip.textContent=hit.getAttribute("data-tip");tip.hidden=false;
      var left=e.clientX+14,top=e.clientY+14,r=tip.getBoundingClientRect();
      if(left+r.width>window.innerWidth)left=e.clientX-r.width-14;
      if(top+r.height>window.innerHeight)top=e.clientY-r.height-14;
      tip.style.left=left+"px";tip.style.top=top+"px";
    });
    svg.addEventListener("mouseleave",function(){tip.hidden=true;cursor.setAttribute("visibility","hidden");});
  });
  Array.prototype.forEach.call(document.querySelectorAll("pre[data-copy]"),function(pre){
    if(!navigator.clipboard)return;
    var b=document.createElement("button");b.type="button";b.className="copy";b.textContent="copy";
    b.addEventListener("click",function(){navigator.clipboard.writeText(pre.textContent).then(function(){b.textContent="copied";});});
    pre.insertAdjacentElement("afterend",b);
  });
  root.setAttribute("data-enhanced","1");
})();
"#;

/// A page being built: its title, navigation entries and body.
#[derive(Debug, Clone, Default)]
pub struct Page {
    title: String,
    header: String,
    nav: Vec<(String, String)>,
    body: String,
}

impl Page {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }

    /// The header block above the navigation (already escaped markup).
    pub fn header(&mut self, html: String) {
        self.header = html;
    }

    /// A titled section with an anchor, listed in the navigation.
    pub fn section(&mut self, id: &str, heading: &str, html: &str) {
        let _ = write!(
            self.body,
            "<section id=\"{id}\"><h2>{heading}</h2>\n{html}</section>\n",
            id = escape(id),
            heading = escape(heading),
        );
        self.nav.push((id.to_owned(), heading.to_owned()));
    }

    /// The whole document.
    pub fn finish(self, footer: &str) -> String {
        let mut out = String::with_capacity(self.body.len() + STYLE.len() + SCRIPT.len() + 2048);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"color-scheme\" content=\"light dark\">\n\
             <meta name=\"generator\" content=\"drillbook {}\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
             <header class=\"top\">{}</header>\n<nav>",
            env!("CARGO_PKG_VERSION"),
            escape(&self.title),
            self.header,
        );
        for (id, heading) in &self.nav {
            let _ = write!(out, "<a href=\"#{}\">{}</a>", escape(id), escape(heading));
        }
        let _ = write!(
            out,
            "</nav>\n{}<footer>{footer}</footer>\n</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
            self.body
        );
        out
    }
}
